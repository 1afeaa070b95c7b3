"""UserStream on its own: frames from a scripted loopback socket, failures, key bookkeeping, the differ.

The simulator never sends a malformed frame or a listenKeyExpired for a key other than the one
the socket was opened with, so those are driven here through the public ``UserStream`` against a
tiny aiohttp WebSocket server that plays a script, as tests/binance/test_ws.py does for
``WsConnection``. REST is a fake that hands out listenKeys and is never asked for anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aegis.account.applier import Outcome
from aegis.account.stream import UserStream
from aegis.binance.errors import Retryable
from aegis.clock import Clock
from aegis.domain import OrderStatus, UserEvent
from aegis.reconcile.diff import diff
from aegis.redact import redact
from aegis.state import AccountSnapshot, StateStore
from tests.factories import balance, order, position
from tests.harness import until
from tests.userstream_payloads import SYMBOL, open_payloads

KEY = "Kq3dVq" + "x" * 58
Script = Callable[["Exchange", web.WebSocketResponse], Awaitable[None]]


@dataclass
class Exchange:
    """listenKeys from a list (an exception in it fails that POST), and a socket that plays ``script``."""

    keys: list[str | Exception] = field(default_factory=lambda: [KEY])
    script: Script | None = None
    paths: list[str] = field(default_factory=list)
    created: int = 0
    sockets: list[web.WebSocketResponse] = field(default_factory=list)

    async def create_listen_key(self) -> str:
        self.created += 1
        item = self.keys.pop(0) if len(self.keys) > 1 else self.keys[0]
        if isinstance(item, Exception):
            raise item
        return item

    async def keepalive_listen_key(self) -> None:
        return None

    async def close_listen_key(self) -> None:
        return None

    async def open_orders(self, symbol: str | None = None) -> list[object]:
        raise AssertionError("no REST snapshot in this test")

    positions = balances = open_algo_orders = open_orders

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.paths.append(request.path_qs)
        self.sockets.append(ws)
        if self.script is not None and len(self.paths) == 1:
            await self.script(self, ws)
        async for _ in ws:
            pass
        return ws


@dataclass
class Rig:
    exchange: Exchange
    stream: UserStream
    state: StateStore


@contextlib.asynccontextmanager
async def streaming(exchange: Exchange) -> AsyncIterator[Rig]:
    """A running UserStream connected to the scripted socket."""
    app = web.Application()
    app.router.add_get("/private/ws", exchange.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state = StateStore()
    stream = UserStream(
        exchange,  # type: ignore[arg-type]
        f"ws://127.0.0.1:{server.port}",
        state,
        Clock(),
        silence_threshold_s=24 * 3600.0,
        backoff_initial_s=1.0,
    )
    task = asyncio.create_task(stream.run())
    try:
        await until(lambda: bool(stream.status()["connected"]), 10.0, "connected")
        yield Rig(exchange, stream, state)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await stream.close()
        await server.close()


def frames(*payloads: dict[str, Any] | bytes) -> Script:
    async def script(_: Exchange, ws: web.WebSocketResponse) -> None:
        for payload in payloads:
            await ws.send_bytes(payload if isinstance(payload, bytes) else orjson.dumps(payload))

    return script


def applied_position(state: StateStore) -> Decimal | None:
    pos = state.snapshot().positions.get(SYMBOL)
    return None if pos is None else pos.amount


@pytest.mark.parametrize(
    "frame",
    [
        b"{not json",
        b'{"e":"ORDER_TRADE_UPDATE","E":1,"o":{"s":"BTCUSDT"}}',
        b'{"e":"ACCOUNT_UPDATE","E":1,"T":1,"a":{"m":"ORDER","B":[{"a":"USDT","wb":"NaN","cw":"1"}],"P":[]}}',
        b'{"e":"STRATEGY_UPDATE","E":1}',
        b"[]",
    ],
)
async def test_malformed_and_unknown_frames_are_counted_and_skipped(frame: bytes) -> None:
    async with streaming(Exchange(script=frames(frame, *open_payloads()))) as rig:
        await until(lambda: rig.stream.events == 4, 5.0, "the good events after the bad frame")
        status = rig.stream.status()
        assert status["parse_errors"] + status["unknown_events"] == 1  # type: ignore[operator]
        assert applied_position(rig.state) == Decimal("0.002")  # the stream went on
        assert status["connects"] == 1 and status["apply_errors"] == 0


async def test_an_event_that_cannot_be_applied_is_logged_and_later_events_still_are() -> None:
    calls = 0
    exchange = Exchange()  # the frames are sent once the applier is wrapped
    async with streaming(exchange) as rig:
        real_apply = rig.stream.applier.apply

        async def flaky(event: UserEvent) -> Outcome:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("bug")
            return await real_apply(event)

        rig.stream.applier.apply = flaky  # type: ignore[method-assign]  # a public collaborator, made to fail once
        for payload in open_payloads():
            await rig.exchange.sockets[0].send_bytes(orjson.dumps(payload))
        await until(lambda: rig.stream.events == 4, 5.0, "every event taken")
        assert rig.stream.status()["apply_errors"] == 1
        assert applied_position(rig.state) == Decimal("0.002")  # the later events landed
        assert any("could not be applied" in r.reason for r in rig.stream.reconcile.history)
        assert any("could not be applied" in p for p in rig.stream.problems())


async def test_listen_key_expired_for_an_old_key_is_ignored_and_for_the_current_one_acted_on() -> None:
    # After the expiry no new key can be had for a while: the stream must say so, not dial the old one.
    exchange = Exchange(keys=[KEY, Retryable("Service Unavailable.", code=-1008, http_status=503)])
    async with streaming(exchange) as rig:
        socket = exchange.sockets[0]
        await socket.send_bytes(orjson.dumps({"e": "listenKeyExpired", "E": 1, "listenKey": "an-older-key"}))
        await until(lambda: rig.stream.events == 1, 5.0, "the old key's expiry read")
        await asyncio.sleep(60)
        assert rig.stream.keeper.key == KEY and rig.stream.problems() == []
        assert rig.stream.status()["connects"] == 1 and exchange.created == 1

        await socket.send_bytes(orjson.dumps({"e": "listenKeyExpired", "E": 2, "listenKey": KEY}))
        await until(lambda: rig.stream.keeper.key is None, 5.0, "the current key dropped")
        await until(lambda: exchange.created >= 2, 5.0, "a new key asked for")
        assert any("no listenKey" in p for p in rig.stream.problems()), rig.stream.problems()
        assert exchange.paths == [f"/private/ws?listenKey={KEY}"]  # never dialled the dead key again


def test_disconnect_reasons_never_carry_the_listen_key() -> None:
    reason = f"connect failed: 400, url='ws://127.0.0.1:9/private/ws?listenKey={KEY}'"
    scrubbed = redact(reason)
    assert KEY not in scrubbed and "listenKey=***" in scrubbed


async def test_the_differ_finds_what_the_stream_missed_and_nothing_when_in_step() -> None:
    state = StateStore()
    mine = order("mine")
    await state.apply_order(mine, at_ms=10)
    await state.apply_account([balance("USDT", "100")], [position(SYMBOL, "0.002")], at_ms=10)
    agree = AccountSnapshot(20, (position(SYMBOL, "0.002"),), (mine,), (), (balance("USDT", "100"),))
    assert diff(state, agree) == []
    filled_elsewhere = msgspec.structs.replace(order("foreign"), status=OrderStatus.PARTIALLY_FILLED)
    disagree = AccountSnapshot(
        20,
        (position(SYMBOL, "0.005"), position("ETHUSDT", "0")),
        (mine, filled_elsewhere),
        (),
        (balance("USDT", "99.5"),),
    )
    assert [str(m) for m in diff(state, disagree)] == [
        "position BTCUSDT BOTH: engine 0.002 @ 100.0, exchange 0.005 @ 100.0",
        "missed order foreign: engine -, exchange BTCUSDT PARTIALLY_FILLED filled 0",
        "balance USDT: engine 100, exchange 99.5",
    ]
    # What an event changed after the snapshot's as-of time is in flight, not a mismatch.
    await state.apply_account(positions=[position(SYMBOL, "0.004")], at_ms=30)
    assert all(m.kind != "position" for m in diff(state, disagree))
