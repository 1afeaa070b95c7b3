"""The user data stream against the simulator, on a fast clock: it survives everything Binance does.

Engine Clock and simulator clock run at the same speed, so 48 exchange hours take ~24 s here.
Truth comes from the simulator: every user event it emitted (its bus) and GET /_sim/state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from loguru import logger

from aegis.account.stream import UserStream
from aegis.binance.errors import ExchangeError
from aegis.binance.rest import BinanceRest
from aegis.clock import Clock
from aegis.config import UserStreamSettings
from aegis.domain import (
    Balance,
    Order,
    OrderRequest,
    OrderType,
    OrderUpdate,
    Position,
    Side,
    TimeInForce,
    UserEvent,
)
from aegis.ops.server import OpsServer
from aegis.sim.config import DEMO_API_KEY, DEMO_API_SECRET, SimConfig
from aegis.sim.server import SimServer
from aegis.state.store import StateStore
from aegis.supervisor import Supervisor
from tests.sim.rest_helpers import python_binance_client

pytestmark = pytest.mark.wallclock  # TODO(virtual time): converted with the harness

SPEED = 7200.0  # one exchange hour = 0.5 s of wall time
HOUR = 3600.0
SYMBOL = "BTCUSDT"


def wall_signed_rest(srv: SimServer) -> BinanceRest:
    """The adapter's REST facade, signing with wall-clock timestamps.

    At 7200x the simulator's recvWindow (5 s of exchange time) is 0.7 ms of wall time, so
    engine-clock timestamps are refused by scheduling jitter alone; the simulator also accepts
    wall-clock timestamps. listenKey calls are not signed, so the stream's timers still run on
    the fast engine clock.
    """
    rest = BinanceRest(srv.rest_url, DEMO_API_KEY, DEMO_API_SECRET, Clock(1.0))

    async def no_sync() -> int:
        return 0

    rest.server_clock.sync = no_sync  # type: ignore[method-assign]
    rest.server_clock.synced_at = 0.0
    rest.server_clock.refresh_interval_s = float("inf")
    return rest


@dataclass
class Env:
    srv: SimServer
    clock: Clock
    rest: BinanceRest
    state: StateStore
    stream: UserStream
    session: aiohttp.ClientSession
    emitted: list[dict[str, Any]] = field(default_factory=list)
    applied: list[UserEvent] = field(default_factory=list)
    reconciliations: int = 0
    reconciled_requests: int = 0
    keys: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    start: float = 0.0

    def hours(self) -> float:
        return (self.clock.monotonic() - self.start) / HOUR

    async def at_hour(self, hour: float) -> None:
        await asyncio.sleep(self.clock.wall_seconds((hour - self.hours()) * HOUR))

    async def until(self, condition: Callable[[], bool], wall_s: float = 2.0, what: str = "") -> float:
        """Wait until ``condition`` holds; returns the wall seconds it took."""
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > wall_s:
                raise AssertionError(f"not within {wall_s} s wall: {what} (status {self.stream.status()})")
            await asyncio.sleep(0.005)
        return time.monotonic() - started

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.session.post(f"{self.srv.rest_url}{path}", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def fault(self, **spec: Any) -> int:
        fault_id: int = (await self.post("/_sim/faults", spec))["id"]
        return fault_id

    async def fault_hits(self, fault_id: int) -> int:
        async with self.session.get(f"{self.srv.rest_url}/_sim/faults") as resp:
            rows = await resp.json()
        return int(next(r["hits"] for r in rows if r["id"] == fault_id))

    async def trade(self, side: str, qty: str = "0.001", *, events: bool = True) -> int:
        """An out-of-band MARKET order (as from the Binance app); returns its order id."""
        body = {"api_key": DEMO_API_KEY, "symbol": SYMBOL, "side": side, "quantity": qty, "events": events}
        order_id: int = (await self.post("/_sim/trade", body))["orderId"]
        return order_id

    async def settled(self) -> None:
        """Wait until the stand-in reconciler answered every request (its snapshot must not
        land on top of the events of the next trade)."""
        total = self.stream.reconcile.total
        await self.until(lambda: self.reconciled_requests >= total, 2.0, "reconciliation done")

    async def trade_seen(self, side: str, qty: str = "0.001") -> float:
        """Trade and wait until the stream reflected the fill; returns the wall seconds it took."""
        await self.settled()
        order_id = await self.trade(side, qty)
        return await self.until(lambda: self.filled(order_id), 1.0, f"fill of out-of-band order {order_id}")

    def filled(self, order_id: int) -> bool:
        known = self.stream.applier.order(SYMBOL, order_id)
        return known is not None and known.status == "FILLED"

    async def truth(self) -> dict[str, Any]:
        account: dict[str, Any] = (await self.srv.state())["accounts"][DEMO_API_KEY]
        return account

    async def assert_state_matches_exchange(self, settle: bool = True) -> None:
        if settle:
            await self.settled()
        truth = await self.truth()
        snap = self.state.snapshot()
        positions = {
            p["symbol"]: Decimal(p["positionAmt"]) for p in truth["positions"] if Decimal(p["positionAmt"])
        }
        assert {s: p.amount for s, p in snap.positions.items()} == positions
        assert sorted(snap.open_orders) == sorted(o["clientOrderId"] for o in truth["open_orders"])
        wallets = {b["asset"]: Decimal(b["balance"]) for b in truth["balances"] if Decimal(b["balance"])}
        assert {a: b.wallet_balance for a, b in snap.balances.items() if b.wallet_balance} == wallets

    def reconnect_requests(self) -> list[str]:
        return [r.reason for r in self.stream.reconcile.history if r.reason.startswith("reconnected after")]


async def snapshot(env: Env) -> tuple[int, list[Position], list[Order], list[Balance]]:
    """REST snapshot, and the exchange time it is at least as new as (taken before the requests;
    the engine would use its server clock minus the round trip, erring early)."""
    as_of = env.srv.sim.clock.now_ms()
    for _ in range(20):
        try:
            orders = await env.rest.open_orders()
            positions = await env.rest.positions()
            balances = await env.rest.balances()
            return as_of, positions, orders, balances
        except ExchangeError:
            await asyncio.sleep(0.02)
    raise AssertionError("REST snapshot failed 20 times")


async def _reconciler(env: Env, fixes: bool = True) -> None:
    """Stand-in for the engine's reconciler: adopt the exchange snapshot on every request
    (or, with ``fixes=False``, take the requests and do nothing, like a broken one)."""
    while True:
        requests = await env.stream.reconcile.wait()
        if not fixes:
            continue
        async with env.stream.paused():
            await env.stream.adopt_snapshot(*await snapshot(env))
        env.reconciliations += 1
        env.reconciled_requests += len(requests)


@contextlib.asynccontextmanager
async def stream_env(
    *, reconciler: str = "fixes", speed: float = SPEED, **stream_kwargs: Any
) -> AsyncIterator[Env]:
    async with SimServer(SimConfig(speed=speed)) as srv, aiohttp.ClientSession() as session:
        # Warm up: the first order loads the symbol's candles, which holds the simulator's loop
        # for a moment (many exchange minutes at this speed). Do it before the clock matters.
        for side in ("BUY", "SELL"):
            body = {"api_key": DEMO_API_KEY, "symbol": SYMBOL, "side": side, "quantity": "0.001"}
            async with session.post(f"{srv.rest_url}/_sim/trade", json=body) as resp:
                assert resp.status == 200
        clock = Clock(speed=speed, start_ms=srv.sim.clock.now_ms())
        rest = wall_signed_rest(srv)
        state = StateStore()
        stream = UserStream(rest, srv.ws_url, state, clock, **stream_kwargs)
        env = Env(srv, clock, rest, state, stream, session, start=clock.monotonic())
        srv.sim.bus.on_user_event(
            lambda key, event: env.emitted.append(event) if key == DEMO_API_KEY else None
        )
        create_listen_key = rest.create_listen_key

        async def recorded_create() -> str:
            key = await create_listen_key()
            env.keys.append(key)
            return key

        rest.create_listen_key = recorded_create  # type: ignore[method-assign]
        sink = logger.add(lambda message: env.log.append(str(message)), level="TRACE")
        stream.applier.on_event(env.applied.append)
        tasks = [asyncio.create_task(stream.run(), name="user")]
        if reconciler != "none":
            tasks.append(asyncio.create_task(_reconciler(env, fixes=reconciler == "fixes")))
        try:
            await env.until(lambda: bool(stream.status()["connected"]), 3.0, "first connect")
            yield env
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await stream.close()
            await rest.close()
            logger.remove(sink)


def otu_keys_emitted(events: list[dict[str, Any]]) -> list[tuple[int, str, str, Decimal, int]]:
    return [
        (e["o"]["i"], e["o"]["x"], e["o"]["X"], Decimal(e["o"]["z"]), e["o"]["t"])
        for e in events
        if e["e"] == "ORDER_TRADE_UPDATE"
    ]


def otu_keys_applied(events: list[UserEvent]) -> list[tuple[int, str, str, Decimal, int]]:
    return [
        (
            e.order.order_id,
            str(e.execution),
            str(e.order.status),
            e.order.executed_qty,
            e.fill.trade_id if e.fill else 0,
        )
        for e in events
        if isinstance(e, OrderUpdate)
    ]


async def test_survives_48_hours_of_keepalives_expiry_failures_drops_and_rotation() -> None:
    async with stream_env(silence_threshold_s=4 * HOUR) as env:
        stream = env.stream
        await env.at_hour(0.5)
        assert await env.trade_seen("BUY", "0.002") < 1.0

        # An order from another client rests on the book: the store shows it as open.
        price = Decimal((await env.srv.state())["symbols"][SYMBOL]["price"]) * Decimal("0.97")
        resting = await env.rest.place_order(
            OrderRequest(SYMBOL, Side.BUY, OrderType.LIMIT, Decimal("0.002"), "other-client-1",
                         price=price.quantize(Decimal("0.1")), time_in_force=TimeInForce.GTC)
        )  # fmt: skip
        await env.until(lambda: "other-client-1" in env.state.snapshot().open_orders, 1.0, "resting order")

        await env.at_hour(3)  # forced expiry: listenKeyExpired, a new key, a reconciliation
        base = stream.reconnects
        await env.fault(kind="expire_listen_key")
        await env.until(lambda: stream.reconnects > base, 2.0, "reconnect after expiry")
        assert stream.keeper.keys_created == 2
        await env.trade_seen("SELL")

        await env.at_hour(5)  # one failed keepalive: retried within minutes, the key survives, no reconnect
        base, before = stream.reconnects, stream.keeper.keepalives
        failed = await env.fault(kind="fail_requests", path="/fapi/v1/listenKey", method="PUT", count=1)
        hit_at = env.hours()
        for _ in range(100):
            if await env.fault_hits(failed) == 1:
                break
            await asyncio.sleep(0.01)
        await env.until(lambda: stream.keeper.keepalives > before, 1.0, "keepalive retried")
        assert env.hours() - hit_at < 0.75  # the retry did not wait for the next 30-min slot
        assert stream.keeper.keepalive_failures == 0 and stream.reconnects == base

        await env.at_hour(6)  # keepalive answered -1125: new key, new connection, reconciliation
        base = stream.reconnects
        await env.fault(
            kind="fail_requests", path="/fapi/v1/listenKey", method="PUT", count=1,
            status=400, code=-1125, msg="This listenKey does not exist.",
        )  # fmt: skip
        await env.until(lambda: stream.reconnects > base, 1.0, "reconnect after -1125")

        await env.at_hour(7)  # the network drops the connection
        base = stream.reconnects
        await env.fault(kind="drop_ws", scope="user")
        await env.until(lambda: stream.reconnects > base, 2.0, "reconnect after drop")
        await env.rest.cancel_order(SYMBOL, order_id=resting.order_id)
        await env.until(lambda: "other-client-1" not in env.state.snapshot().open_orders, 1.0, "cancel seen")

        # Proactive rotation 23 h after the last connect (~h30): keep trading across it.
        since_ms = stream.status()["connected_since_ms"]
        assert isinstance(since_ms, int)
        rotation_hour = env.hours() + (since_ms + 23 * HOUR * 1000 - env.clock.now_ms()) / 1000 / HOUR
        assert rotation_hour < 46, env.reconnect_requests()
        await env.at_hour(rotation_hour - 0.4)
        base = stream.reconnects
        side = "BUY"
        while stream.rotations == 0 or env.hours() < rotation_hour + 0.5:
            assert env.hours() < rotation_hour + 1.5, "no rotation before the 24 h cut"
            await env.trade(side)
            side = "BUY" if side == "SELL" else "SELL"
            await asyncio.sleep(0.03)
        assert stream.reconnects == base, env.reconnect_requests()  # the rotation lost no connection time

        await env.at_hour(40)
        await env.trade_seen("BUY")
        await env.at_hour(48)
        await asyncio.sleep(0.1)

        emitted, applied = otu_keys_emitted(env.emitted), otu_keys_applied(env.applied)
        assert len(emitted) > 30
        assert [k for k, n in Counter(applied).items() if n > 1] == []  # nothing applied twice
        assert sorted(applied) == sorted(emitted)  # every order event emitted was applied
        trades = {k[4] for k in emitted if k[4]}
        assert stream.applier.counters.fills == len(trades)
        assert stream.rotations == 1 and stream.reconnects >= 3
        assert stream.applier.counters.duplicates > 0  # the overlap did deliver events on both connections
        assert len(env.reconnect_requests()) == stream.reconnects  # one reconciliation request per reconnect
        assert stream.keeper.keepalives >= 80  # every 30 min for 48 h, minus the reconnect resets
        assert stream.problems() == []
        await env.assert_state_matches_exchange()
        # listenKeys are bearer tokens: none of the ones used ever reached a log line.
        log = "".join(env.log)
        assert len(set(env.keys)) == 2 and not [k for k in env.keys if k in log]


async def test_at_real_speed_an_order_from_another_client_shows_within_a_second() -> None:
    async with stream_env(speed=1.0) as env:
        seconds = await env.trade_seen("BUY", "0.002")
        assert seconds < 1.0
        await env.assert_state_matches_exchange()


async def test_events_arriving_while_a_snapshot_is_swapped_in_are_held_then_applied() -> None:
    async with stream_env(reconciler="none") as env:
        stream = env.stream
        async with stream.paused():
            as_of, positions, orders, balances = await snapshot(env)
            order_id = await env.trade("BUY", "0.003")  # its events arrive now, after the snapshot
            await asyncio.sleep(0.05)
            assert not env.filled(order_id)  # held, not applied under the reconciler's feet
            await stream.adopt_snapshot(as_of, positions, orders, balances)
        await env.until(lambda: env.filled(order_id), 1.0, "held events applied after the swap")
        await env.assert_state_matches_exchange(settle=False)


async def test_with_keepalive_disabled_the_key_expires_at_60_minutes_and_the_stream_recovers() -> None:
    async with stream_env(keepalive_interval_s=2 * HOUR) as env:
        await env.at_hour(0.9)
        assert env.stream.reconnects == 0
        await env.until(lambda: env.stream.reconnects == 1, 1.0, "recovery from expiry")
        assert 1.0 <= env.hours() < 1.3
        assert env.stream.keeper.keys_created == 2 and env.stream.keeper.keepalives == 0
        assert len(env.reconnect_requests()) == 1
        await env.trade_seen("BUY")
        await env.assert_state_matches_exchange()


async def test_the_24_hour_cut_is_survived_by_reconnecting_when_rotation_is_off() -> None:
    async with stream_env(rotate_after_s=30 * HOUR, silence_threshold_s=6 * HOUR) as env:
        await env.at_hour(23.8)
        assert env.stream.reconnects == 0
        await env.until(lambda: env.stream.reconnects == 1, 1.0, "reconnect after the 24 h cut")
        assert env.stream.status()["last_disconnect_reason"] == "closed by peer (1000)"
        assert len(env.reconnect_requests()) == 1 and env.stream.rotations == 0
        await env.trade_seen("SELL")
        await env.assert_state_matches_exchange()


async def test_events_missed_while_no_key_could_be_had_are_recovered_by_reconciliation() -> None:
    async with stream_env() as env:
        stream = env.stream
        await env.fault(kind="fail_requests", path="/fapi/v1/listenKey", method="POST", count=10)
        await env.fault(kind="expire_listen_key")
        await env.until(lambda: stream.keeper.key is None, 1.0, "key gone")
        missed = await env.trade("BUY", "0.003")  # nobody is listening: these events are lost
        await env.at_hour(env.hours() + 0.05)
        assert not env.filled(missed)
        problems = stream.problems()
        assert any("no listenKey" in p for p in problems) and any("disconnected" in p for p in problems)
        await env.until(lambda: stream.reconnects == 1, 2.0, "reconnect once POST works again")
        await env.until(lambda: env.reconciliations >= 2, 1.0, "reconciliation after the gap")
        await env.assert_state_matches_exchange()
        assert not env.filled(missed)  # the stream never saw it; the reconciliation did
        assert stream.problems() == []


async def test_a_silent_stream_that_disagrees_with_rest_asks_for_reconciliation() -> None:
    async with stream_env(silence_threshold_s=600) as env:
        stream = env.stream
        await env.settled()
        await env.trade("BUY", "0.004", events=False)  # the exchange moved, the stream said nothing
        await env.until(lambda: bool(stream.crosscheck_diffs), 2.0, "cross-check finds the difference")
        reasons = [r.reason for r in stream.reconcile.history]
        assert any(r.startswith("silent and REST disagrees") and "position BTCUSDT" in r for r in reasons)
        assert any("REST disagreed" in p for p in stream.problems())
        await env.assert_state_matches_exchange()  # the reconciliation it asked for fixed the store
        checks = stream.crosschecks
        await env.until(lambda: stream.crosschecks > checks, 2.0, "next cross-check")
        assert stream.problems() == [] and stream.reconnects == 0, stream.crosscheck_diffs


async def test_a_stream_that_stays_wrong_after_reconciliations_is_reconnected() -> None:
    async with stream_env(reconciler="ignores", silence_threshold_s=600) as env:
        stream = env.stream
        await env.trade("BUY", "0.004", events=False)
        # The requests are taken but the store still differs a silence period later: changes are
        # happening that this connection does not deliver.
        await env.until(lambda: stream.reconnects == 1, 2.0, "reconnect after two disagreeing checks")
        assert "twice in a row" in str(stream.status()["last_disconnect_reason"])
        assert env.reconnect_requests()


async def test_without_a_reconciler_disagreement_is_reported_but_causes_no_reconnect_churn() -> None:
    async with stream_env(reconciler="none", silence_threshold_s=600) as env:
        stream = env.stream
        await env.trade("BUY", "0.004", events=False)
        await env.at_hour(env.hours() + 1.5)  # several silence periods
        assert stream.crosschecks >= 3 and stream.reconnects == 0
        assert any("REST disagreed" in p for p in stream.problems())


async def test_state_endpoint_shows_the_account_and_the_stream_status() -> None:
    async with stream_env(silence_threshold_s=HOUR) as env:
        await env.trade_seen("BUY", "0.002")
        # Another client on the same account (python-binance, unchanged) rests an order.
        client = await python_binance_client(env.srv)
        try:
            client.timestamp_offset = 0  # wall-clock timestamps: see wall_signed_rest
            price = Decimal((await env.srv.state())["symbols"][SYMBOL]["price"]) * Decimal("0.97")
            await client.futures_create_order(
                symbol=SYMBOL, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.002",
                price=format(price.quantize(Decimal("0.1")), "f"), newClientOrderId="python-binance-1",
            )  # fmt: skip
        finally:
            await client.close_connection()
        await env.until(lambda: "python-binance-1" in env.state.snapshot().open_orders, 1.0, "foreign order")
        await env.at_hour(env.hours() + 0.7)  # at least one keepalive
        await env.stream._publish_status()
        ops = OpsServer(env.state, problems=[env.stream.problems])
        port = await ops.start()
        try:
            async with env.session.get(f"http://127.0.0.1:{port}/state") as resp:
                body = await resp.json()
            async with env.session.get(f"http://127.0.0.1:{port}/health") as resp:
                assert resp.status == 200, await resp.text()
        finally:
            await ops.stop()
        user = body["streams"]["user"]
        assert user["connected"] is True and user["connected_since_ms"] is not None
        assert user["keepalives"] >= 1 and user["last_keepalive_ms"] is not None
        assert user["key_age_s"] > 0 and user["last_event_age_s"] >= 0
        assert user["reconnects"] == 0 and user["rotations"] == 0
        assert len(user["listen_key"]) <= 7 and env.stream.keeper.key not in str(body)
        assert [p["amount"] for p in body["positions"] if p["symbol"] == SYMBOL] == ["0.002"]
        assert [o["client_order_id"] for o in body["open_orders"]] == ["python-binance-1"]


async def test_close_deletes_the_listen_key() -> None:
    async with stream_env() as env:
        key = env.stream.keeper.key
        assert key is not None
        await env.stream.close()
        async with env.session.put(
            f"{env.srv.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": DEMO_API_KEY}
        ) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == -1125


async def test_under_the_supervisor_as_the_engine_runs_it_and_stops_promptly() -> None:
    async with SimServer(SimConfig(speed=SPEED)) as srv:
        clock = Clock(speed=SPEED, start_ms=srv.sim.clock.now_ms())
        rest = wall_signed_rest(srv)
        state = StateStore()
        stream = UserStream.from_settings(UserStreamSettings(), rest, srv.ws_url, state, clock)
        supervisor = Supervisor(clock)
        supervisor.spawn("user", stream.run, critical=True)
        try:
            started = time.monotonic()
            while not state.snapshot().streams.get("user", {}).get("connected"):
                assert time.monotonic() - started < 3.0, stream.status()
                await asyncio.sleep(0.01)
            assert supervisor.problems() == [] and stream.problems() == []
        finally:
            stopped_at = time.monotonic()
            assert await supervisor.stop(2.0)
            await stream.close()
            assert time.monotonic() - stopped_at < 2.0
            await rest.close()
        assert stream.keeper.key is None  # DELETEd on close
        assert state.snapshot().streams["user"]["connected"] is False
