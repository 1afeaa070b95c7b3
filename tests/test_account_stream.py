"""The user data stream against the simulator: it survives everything Binance does to it.

On virtual time the engine and the exchange share one clock, so 48 exchange hours of keepalives,
expiries, drops and rotations take the CPU time they need and nothing else. Truth comes from the
simulator: every user event it emitted (its bus) and GET /_sim/state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from decimal import Decimal

import aiohttp

from aegis.domain import OrderRequest, OrderType, OrderUpdate, Side, TimeInForce, UserEvent
from aegis.ops.server import OpsServer
from aegis.redact import key_prefix
from aegis.supervisor import Supervisor
from tests.harness import DEMO_API_KEY, until
from tests.rigs import HOUR, SYMBOL, AccountRig, account_rig
from tests.sim.rest_helpers import python_binance_client

OtuKey = tuple[int, str, str, Decimal, int]


def otu_keys_emitted(events: list[dict[str, object]]) -> list[OtuKey]:
    out = []
    for e in events:
        if e["e"] == "ORDER_TRADE_UPDATE":
            o = e["o"]
            assert isinstance(o, dict)
            out.append((o["i"], o["x"], o["X"], Decimal(o["z"]), o["t"]))
    return out


def otu_keys_applied(events: list[UserEvent]) -> list[OtuKey]:
    return [
        (e.order.order_id, str(e.execution), str(e.order.status), e.order.executed_qty, e.fill.trade_id if e.fill else 0)
        for e in events
        if isinstance(e, OrderUpdate)
    ]


async def resting_limit(rig: AccountRig, client_id: str) -> int:
    """A BUY LIMIT 3% under the market that stays on the book; its order id."""
    price = Decimal((await rig.sim.state())["symbols"][SYMBOL]["price"]) * Decimal("0.97")
    order = await rig.rest.place_order(
        OrderRequest(SYMBOL, Side.BUY, OrderType.LIMIT, Decimal("0.002"), client_id,
                     price=price.quantize(Decimal("0.1")), time_in_force=TimeInForce.GTC)
    )  # fmt: skip
    return order.order_id


async def test_survives_48_hours_of_keepalives_expiry_failures_drops_and_rotation() -> None:
    log: list[str] = []
    from loguru import logger

    sink = logger.add(lambda message: log.append(str(message)), level="TRACE")
    keys: list[str] = []
    try:
        async with account_rig(silence_threshold_s=4 * HOUR) as rig:
            stream = rig.stream
            keys.append(str(stream.keeper.key))
            await rig.at(hours=0.5)
            assert await rig.trade_seen("BUY", "0.002") < 1.0

            resting = await resting_limit(rig, "other-client-1")
            await until(lambda: rig.state.order("other-client-1") is not None, 1.0, "resting order")

            await rig.at(hours=3)  # forced expiry: listenKeyExpired, a new key, a reconciliation
            base = stream.reconnects
            await rig.admin.inject("expire_listen_key")
            await until(lambda: stream.reconnects > base, 60.0, "reconnect after expiry")
            keys.append(str(stream.keeper.key))
            assert stream.keeper.keys_created == 2
            await rig.trade_seen("SELL")

            await rig.at(hours=5)  # one failed keepalive: retried within minutes, no reconnect
            base, before = stream.reconnects, stream.keeper.keepalives
            await rig.admin.inject("fail_requests", path="/fapi/v1/listenKey", method="PUT", count=1)
            failed_at = rig.hours()
            await until(lambda: stream.keeper.keepalives > before, HOUR, "keepalive retried")
            assert rig.hours() - failed_at < 0.75  # the retry did not wait for the next 30-min slot
            assert stream.keeper.keepalive_failures == 0 and stream.reconnects == base

            await rig.at(hours=6)  # keepalive answered -1125: new key, new connection
            base = stream.reconnects
            await rig.admin.inject(
                "fail_requests", path="/fapi/v1/listenKey", method="PUT", count=1,
                status=400, code=-1125, msg="This listenKey does not exist.",
            )  # fmt: skip
            await until(lambda: stream.reconnects > base, HOUR, "reconnect after -1125")
            keys.append(str(stream.keeper.key))

            await rig.at(hours=7)  # the network drops the connection
            base = stream.reconnects
            await rig.admin.inject("drop_ws", scope="user")
            await until(lambda: stream.reconnects > base, 60.0, "reconnect after drop")
            await rig.rest.cancel_order(SYMBOL, order_id=resting)
            await until(lambda: not rig.state.open_orders(), 1.0, "cancel seen")

            # Proactive rotation 23 h after the last connect: keep trading across it.
            since_ms = stream.status()["connected_since_ms"]
            assert isinstance(since_ms, int)
            rotation_hour = rig.hours() + (since_ms + 23 * HOUR * 1000 - rig.clock.now_ms()) / 1000 / HOUR
            await rig.at(hours=rotation_hour - 0.1)
            base = stream.reconnects
            side = "BUY"
            while stream.rotations == 0 or rig.hours() < rotation_hour + 0.1:
                assert rig.hours() < rotation_hour + 1.0, "no rotation before the 24 h cut"
                await rig.trade(side)
                side = "BUY" if side == "SELL" else "SELL"
                await asyncio.sleep(1.0)
            assert stream.reconnects == base  # the rotation lost no connection time

            await rig.at(hours=40)
            await rig.trade_seen("BUY")
            await rig.at(hours=48)

            emitted, applied = otu_keys_emitted(rig.emitted), otu_keys_applied(rig.applied)
            assert len(emitted) > 30
            assert [k for k, n in Counter(applied).items() if n > 1] == []  # nothing applied twice
            assert sorted(applied) == sorted(emitted)  # every order event emitted was applied
            assert stream.applier.counters.fills == len({k[4] for k in emitted if k[4]})
            assert stream.rotations == 1 and stream.reconnects >= 3
            assert stream.applier.counters.duplicates > 0  # the overlap delivered events on both connections
            assert len(rig.reconnect_requests()) == stream.reconnects  # one reconciliation request per reconnect
            assert stream.keeper.keepalives >= 80  # every 30 min for 48 h, minus the reconnect resets
            assert stream.problems() == []
            await until(lambda: rig.requests.pending == 0, 10.0, "reconciled")
            await rig.assert_matches_exchange()
    finally:
        logger.remove(sink)
    # listenKeys are bearer tokens: none of the ones used ever reached a log line.
    text = "".join(log)
    # -1125 from a keepalive is answered with a new POST; the simulator hands out the key it still has.
    assert len(set(keys)) >= 2 and [k for k in keys if k in text] == []
    assert key_prefix(keys[0]) in text  # only their prefix did


async def test_an_order_from_another_client_shows_within_a_second_of_exchange_time() -> None:
    async with account_rig() as rig:
        assert await rig.trade_seen("BUY", "0.002") < 1.0
        await rig.assert_matches_exchange()


async def test_events_during_a_slow_snapshot_are_applied_at_once_and_never_undone() -> None:
    async with account_rig() as rig:
        assert rig.reconciler is not None
        await rig.admin.inject("latency", ms=3000, seconds=5)  # REST answers take 3 s for a while
        pass_ = asyncio.create_task(rig.reconciler.reconcile("test"))
        await asyncio.sleep(0.5)  # the snapshot requests are in flight
        order_id = await rig.trade("BUY", "0.003")
        await until(lambda: rig.filled(order_id), 1.0, "fill applied while the snapshot is in flight")
        report = await pass_
        assert report.findings == ()  # the trade happened after the snapshot's as-of time: not a mismatch
        assert rig.filled(order_id) and rig.store_position() == await rig.position()
        await rig.assert_matches_exchange()


async def test_with_keepalive_disabled_the_key_expires_at_60_minutes_and_the_stream_recovers() -> None:
    async with account_rig(keepalive_interval_s=2 * HOUR) as rig:
        await rig.at(hours=0.9)
        assert rig.stream.reconnects == 0
        await until(lambda: rig.stream.reconnects == 1, 0.5 * HOUR, "recovery from expiry")
        assert 1.0 <= rig.hours() < 1.1
        assert rig.stream.keeper.keys_created == 2 and rig.stream.keeper.keepalives == 0
        assert len(rig.reconnect_requests()) == 1
        await rig.trade_seen("BUY")
        await rig.assert_matches_exchange()


async def test_the_24_hour_cut_is_survived_by_reconnecting_when_rotation_is_off() -> None:
    async with account_rig(rotate_after_s=30 * HOUR, silence_threshold_s=6 * HOUR) as rig:
        await rig.at(hours=23.9)
        assert rig.stream.reconnects == 0
        await until(lambda: rig.stream.reconnects == 1, 0.5 * HOUR, "reconnect after the 24 h cut")
        assert rig.stream.status()["last_disconnect_reason"] == "closed by peer (1000)"
        assert len(rig.reconnect_requests()) == 1 and rig.stream.rotations == 0
        await rig.trade_seen("SELL")
        await rig.assert_matches_exchange()


async def test_events_missed_while_no_key_could_be_had_are_recovered_by_reconciliation() -> None:
    async with account_rig() as rig:
        stream = rig.stream
        await rig.admin.inject("fail_requests", path="/fapi/v1/listenKey", method="POST", count=10)
        await rig.admin.inject("expire_listen_key")
        await until(lambda: stream.keeper.key is None, 10.0, "key gone")
        missed = await rig.trade("BUY", "0.003")  # nobody is listening: these events are lost
        await asyncio.sleep(90)
        assert not rig.filled(missed)
        problems = stream.problems()
        assert any("no listenKey" in p for p in problems) and any("disconnected" in p for p in problems)
        await until(lambda: stream.reconnects == 1, HOUR, "reconnect once POST works again")
        await until(lambda: rig.store_position() == Decimal("0.003"), 60.0, "reconciled after the gap")
        await rig.assert_matches_exchange()
        assert not rig.filled(missed)  # the stream never saw it; the reconciliation did
        assert stream.problems() == []


async def test_a_silent_stream_that_disagrees_with_rest_asks_for_reconciliation() -> None:
    async with account_rig(silence_threshold_s=600) as rig:
        stream = rig.stream
        await rig.trade("BUY", "0.004", events=False)  # the exchange moved, the stream said nothing
        await until(lambda: bool(stream.crosscheck_diffs), 700.0, "cross-check finds the difference")
        reasons = [r.reason for r in rig.requests.history]
        assert any(r.startswith("silent and REST disagrees") and "position BTCUSDT" in r for r in reasons), reasons
        assert any("REST disagreed" in p for p in stream.problems())
        await until(lambda: rig.store_position() == Decimal("0.004"), 10.0, "the reconciliation it asked for")
        checks = stream.crosschecks
        await until(lambda: stream.crosschecks > checks, 700.0, "next cross-check")
        assert stream.problems() == [] and stream.reconnects == 0, stream.crosscheck_diffs


async def test_a_stream_that_stays_wrong_after_reconciliations_is_reconnected() -> None:
    async with account_rig(reconciler=False, silence_threshold_s=600) as rig:
        stream = rig.stream

        async def ignoring_reconciler() -> None:  # takes the requests, fixes nothing
            while True:
                await rig.requests.wait()

        task = asyncio.create_task(ignoring_reconciler())
        try:
            await rig.trade("BUY", "0.004", events=False)
            await until(lambda: stream.reconnects == 1, 2000.0, "reconnect after two disagreeing checks")
            assert "twice in a row" in str(stream.status()["last_disconnect_reason"])
            assert rig.reconnect_requests()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_without_a_reconciler_disagreement_is_reported_but_causes_no_reconnect_churn() -> None:
    async with account_rig(reconciler=False, silence_threshold_s=600) as rig:
        await rig.trade("BUY", "0.004", events=False)
        await rig.at(hours=1.5)  # several silence periods
        assert rig.stream.crosschecks >= 3 and rig.stream.reconnects == 0
        assert any("REST disagreed" in p for p in rig.stream.problems())


async def test_state_endpoint_shows_the_account_and_the_stream_status() -> None:
    async with account_rig(silence_threshold_s=HOUR) as rig:
        await rig.trade_seen("BUY", "0.002")
        # Another client on the same account (python-binance, unchanged) rests an order.
        client = await python_binance_client(rig.sim)
        try:
            price = Decimal((await rig.sim.state())["symbols"][SYMBOL]["price"]) * Decimal("0.97")
            await client.futures_create_order(
                symbol=SYMBOL, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.002",
                price=format(price.quantize(Decimal("0.1")), "f"), newClientOrderId="python-binance-1",
            )  # fmt: skip
        finally:
            await client.close_connection()
        await until(lambda: rig.state.order("python-binance-1") is not None, 1.0, "foreign order")
        await rig.at(hours=0.7)  # at least one keepalive
        ops = OpsServer(rig.state, problems=[rig.stream.problems])
        port = await ops.start()
        try:
            await until(lambda: bool(rig.state.snapshot().streams["user"].get("keepalives")), 5.0, "status")
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/state") as resp:
                    body = await resp.json()
                async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                    assert resp.status == 200, await resp.text()
        finally:
            await ops.stop()
        user = body["streams"]["user"]
        assert user["connected"] is True and user["connected_since_ms"] is not None
        assert user["keepalives"] >= 1 and user["last_keepalive_ms"] is not None
        assert user["key_age_s"] > 0 and user["last_event_age_s"] >= 0
        assert user["reconnects"] == 0 and user["rotations"] == 0
        assert len(user["listen_key"]) <= 7 and str(rig.stream.keeper.key) not in str(body)
        assert [p["amount"] for p in body["positions"] if p["symbol"] == SYMBOL] == ["0.002"]
        assert [o["client_order_id"] for o in body["open_orders"]] == ["python-binance-1"]


async def test_close_deletes_the_listen_key() -> None:
    async with account_rig() as rig:
        assert rig.stream.keeper.key is not None
        await rig.stream.close()
        async with aiohttp.ClientSession() as http, http.put(
            f"{rig.sim.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": DEMO_API_KEY}
        ) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == -1125


async def test_under_the_supervisor_as_the_engine_runs_it_and_stops_promptly() -> None:
    async with account_rig(reconciler=False) as rig:
        supervisor = Supervisor(rig.clock)
        await rig.stream.close()  # the rig's own run is replaced by a supervised one
        supervisor.spawn("user", rig.stream.run, critical=True)
        await until(lambda: bool(rig.stream.status()["connected"]), 10.0, "connected under the supervisor")
        assert supervisor.problems() == [] and rig.stream.problems() == []
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        assert await supervisor.stop(2.0)
        assert loop.time() - stopped_at < 2.0


# --- the socket stays open but events stop -------------------------------------------------


async def test_a_frozen_user_socket_is_reconnected_and_the_trade_reconciled() -> None:
    async with account_rig(silence_threshold_s=HOUR) as rig:
        stream = rig.stream
        before = await rig.position()
        await rig.admin.inject("freeze_ws", scope="user")
        order_id = await rig.trade("BUY", "0.005")  # its events go nowhere: the socket is frozen
        # Our pings (every 60 s) get no pong: the connection is replaced within a ping interval and
        # a half, long before the silence check would look.
        took = await until(lambda: stream.reconnects >= 1, HOUR, "the frozen connection replaced")
        assert took < 100
        assert "pong" in str(stream.status()["last_disconnect_reason"]).lower()
        assert rig.reconnect_requests()
        target = before + Decimal("0.005")
        await until(lambda: rig.store_position() == target and rig.requests.pending == 0, 60.0, "reconciled")
        assert not rig.filled(order_id)  # the stream never saw it: the reconciliation did
        await rig.assert_matches_exchange()
        again = await rig.trade("SELL", "0.005")  # the new connection delivers events again
        await until(lambda: rig.filled(again), 1.0, "fill seen on the new connection")
        assert rig.store_position() == await rig.position() == before


async def test_events_lost_on_a_live_socket_are_found_by_the_silence_check_and_reconciled() -> None:
    async with account_rig(silence_threshold_s=600) as rig:  # below the 15-minute periodic pass
        assert rig.reconciler is not None
        stream = rig.stream
        before = await rig.position()
        await rig.admin.inject("pause_user", count=10)  # more than one trade's events
        order_id = await rig.trade("SELL", "0.007")  # the exchange moves; the stream says nothing
        await until(
            lambda: any(r.reason.startswith("silent and REST disagrees") for r in rig.requests.history),
            2 * HOUR,
            "the silence cross-check finds the difference",
        )
        reasons = [r.reason for r in rig.requests.history if r.reason.startswith("silent")]
        assert "position BTCUSDT" in reasons[0], reasons
        await until(lambda: rig.store_position() == before - Decimal("0.007"), 60.0, "reconciled")
        assert not rig.filled(order_id)  # the events never came: the reconciliation did it
        assert rig.reconciler.corrections >= 1
        await rig.assert_matches_exchange()
        # The socket answered the probe: pongs flow, so it is not reconnected for one lost batch.
        assert stream.reconnects == 0, stream.status()["last_disconnect_reason"]
