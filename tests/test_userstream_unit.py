"""UserStream pieces without an exchange: frames, failures, key bookkeeping, the REST cross-check."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import msgspec
import pytest

from aegis.account.applier import Outcome
from aegis.account.stream import UserStream
from aegis.clock import Clock
from aegis.domain import ListenKeyExpired, OrderStatus, UserEvent
from aegis.reconcile.diff import diff
from aegis.redact import redact
from aegis.state import AccountSnapshot, StateStore
from tests.factories import balance, order, position
from tests.userstream_payloads import SYMBOL, open_sequence

KEY = "Kq3dVq" + "x" * 58


class NoRest:
    """The stream under test never reaches REST here; any call is a test failure."""

    async def create_listen_key(self) -> str:
        raise AssertionError("no REST in this test")

    async def keepalive_listen_key(self) -> None:
        raise AssertionError("no REST in this test")

    async def close_listen_key(self) -> None:
        raise AssertionError("no REST in this test")

    async def open_orders(self, symbol: str | None = None) -> list[object]:
        raise AssertionError("no REST in this test")

    async def positions(self, symbol: str | None = None) -> list[object]:
        raise AssertionError("no REST in this test")

    async def balances(self) -> list[object]:
        raise AssertionError("no REST in this test")

    async def open_algo_orders(self, symbol: str | None = None) -> list[object]:
        raise AssertionError("no REST in this test")


def make_stream(state: StateStore | None = None) -> UserStream:
    return UserStream(NoRest(), "ws://127.0.0.1:1", state or StateStore(), Clock())  # type: ignore[arg-type]


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
def test_malformed_and_unknown_frames_are_counted_and_skipped(frame: bytes) -> None:
    stream = make_stream()
    assert stream._decode(frame) is None
    assert stream.parse_errors + stream.unknown_events == 1
    assert stream.status()["parse_errors"] == stream.parse_errors


async def test_an_event_that_cannot_be_applied_is_logged_and_later_events_still_are() -> None:
    state = StateStore()
    stream = make_stream(state)
    real_apply = stream.applier.apply
    calls = 0

    async def flaky(event: UserEvent) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug")
        return await real_apply(event)

    stream.applier.apply = flaky  # type: ignore[method-assign]
    consumer = asyncio.create_task(stream._consume())
    try:
        for event in open_sequence():
            stream._on_message(event)
        for _ in range(100):
            if stream.events == 4:
                break
            await asyncio.sleep(0.001)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    assert stream.apply_errors == 1
    assert state.snapshot().positions[SYMBOL].amount == Decimal("0.002")  # the later events landed
    assert any("could not be applied" in r.reason for r in stream.reconcile.history)
    assert any("could not be applied" in p for p in stream.problems())


async def test_listen_key_expired_for_an_old_key_is_ignored_and_for_the_current_one_acted_on() -> None:
    stream = make_stream()
    stream.keeper.key = KEY
    stream.keeper.last_ok_ms = stream.keeper.created_ms = 1
    stream._on_listen_key_expired(ListenKeyExpired(1, "an-older-key"))
    assert stream.keeper.key == KEY and stream._need_key is None
    stream._on_listen_key_expired(ListenKeyExpired(2, KEY))
    assert stream.keeper.key is None and stream._need_key == "listenKeyExpired received"
    assert any("no listenKey" in p for p in stream.problems())


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
