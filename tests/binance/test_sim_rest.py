"""BinanceRest end to end against aegis.sim on loopback: real HTTP, real signing, real faults."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal

import pytest

from aegis.binance import (
    AuthError,
    OrderNotFound,
    OutcomeUnknown,
    Priority,
    RateLimited,
    Rejected,
    Retryable,
)
from aegis.binance.ratelimit import Permit
from aegis.domain import OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from tests.harness import admin_for, rest_for, running_sim


def limit_buy(cid: str, price: str = "10000.0", qty: str = "0.010") -> OrderRequest:
    return OrderRequest(
        "BTCUSDT",
        Side.BUY,
        OrderType.LIMIT,
        Decimal(qty),
        cid,
        price=Decimal(price),
        time_in_force=TimeInForce.GTC,
    )


async def test_order_lifecycle_in_domain_types_with_exact_decimals_and_big_ids() -> None:
    async with running_sim() as sim, rest_for(sim) as rest:
        info = await rest.exchange_info()
        assert info.symbols["BTCUSDT"].trading and rest.governor.limits == info.rate_limits
        candles = await rest.klines("BTCUSDT", "1m", limit=3, priority=Priority.MARKET_DATA)
        assert len(candles) == 3 and all(isinstance(c.close, Decimal) for c in candles)
        assert candles[1].open_time_ms - candles[0].open_time_ms == 60_000
        placed = await rest.place_order(limit_buy("e2e-1"))
        assert placed.status is OrderStatus.NEW and placed.price == Decimal("10000.0")
        queried = await rest.get_order("BTCUSDT", client_order_id="e2e-1")
        assert queried.order_id == placed.order_id  # ids beyond 2**53 survive the round trip
        assert [o.client_order_id for o in await rest.open_orders("BTCUSDT")] == ["e2e-1"]
        cancelled = await rest.cancel_order("BTCUSDT", client_order_id="e2e-1")
        assert cancelled.status is OrderStatus.CANCELED
        filled = await rest.place_order(
            OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, Decimal("0.010"), "e2e-2")
        )
        assert filled.status is OrderStatus.FILLED and filled.executed_qty == Decimal("0.010")
        (position,) = [p for p in await rest.positions() if p.symbol == "BTCUSDT"]
        assert position.amount == Decimal("0.010") and position.entry_price == filled.avg_price
        (fill,) = await rest.user_trades("BTCUSDT")
        assert fill.order_id == filled.order_id and fill.quantity == Decimal("0.010")
        usdt = next(b for b in await rest.balances() if b.asset == "USDT")
        assert usdt.wallet_balance < Decimal("10000")  # the taker fee was paid
        assert await rest.set_leverage("BTCUSDT", 7) == 7
        key = await rest.create_listen_key()
        assert await rest.create_listen_key() == key  # Binance returns the active key
        await rest.keepalive_listen_key()
        await rest.close_listen_key()


async def test_conditional_orders_go_to_the_algo_endpoint() -> None:
    async with running_sim() as sim, rest_for(sim) as rest:
        stop = OrderRequest(
            "BTCUSDT",
            Side.SELL,
            OrderType.STOP_MARKET,
            Decimal("0.010"),
            "algo-1",
            trigger_price=Decimal("1000.0"),
        )
        with pytest.raises(ValueError):
            await rest.place_order(stop)
        algo = await rest.place_algo_order(stop)
        assert algo.client_algo_id == "algo-1" and algo.trigger_price == Decimal("1000.0")
        assert (await rest.get_algo_order(client_algo_id="algo-1")).status == "NEW"
        assert await rest.cancel_algo_order(client_algo_id="algo-1") == algo.algo_id


async def test_minus_1021_after_an_exchange_clock_jump_is_recovered_transparently() -> None:
    async with running_sim(timestamp_reference="sim") as sim, admin_for(sim) as admin, rest_for(sim) as rest:
        await rest.open_orders("BTCUSDT")
        before = rest.offset_ms
        await admin.inject("clock_jump", ms=120_000)
        assert await rest.open_orders("BTCUSDT") == []  # no exception reached the caller
        assert rest.transport.clock_retries == 1
        assert rest.offset_ms - before == 120_000  # virtual time: the round trip takes no exchange time


async def test_a_429_storm_pauses_all_rest_until_retry_after_then_drains_without_another_429() -> None:
    async with running_sim() as sim, admin_for(sim) as admin, rest_for(sim) as rest:
        await rest.server_time()
        fault = await admin.inject("rate_limit", status=429, seconds=1)
        with pytest.raises(RateLimited) as info:
            await rest.klines("BTCUSDT", limit=10)
        assert info.value.retry_after_s == 1.0
        paused_until = rest.governor.paused_until_ms
        assert paused_until >= sim.sim.clock.now_ms() + 1000 - 1
        results = await asyncio.gather(
            *(rest.klines("BTCUSDT", limit=10) for _ in range(10)),
            rest.place_order(limit_buy("after-429")),
            *(rest.open_orders("BTCUSDT") for _ in range(5)),
        )
        order = results[10]
        assert order.update_time_ms >= paused_until  # it reached the exchange after the pause, not during it
        assert sim.sim.clock.now_ms() >= paused_until
        assert all(len(r) == 10 for r in results[:10])
        row = next(f for f in await admin.faults() if f["id"] == fault)
        assert row["hits"] == 1  # the 16 queued calls never met another 429: none went out while paused


async def test_a_418_ban_stops_rest_until_the_time_in_the_message() -> None:
    async with running_sim() as sim, admin_for(sim) as admin, rest_for(sim) as rest:
        await rest.server_time()
        fault = await admin.inject("rate_limit", status=418, seconds=1)
        with pytest.raises(RateLimited) as info:
            await rest.server_time()
        assert info.value.until_ms is not None and info.value.http_status == 418
        assert rest.governor.paused_until_ms >= info.value.until_ms - rest.offset_ms
        served = await rest.server_time()  # waits out the ban, then succeeds
        assert served >= info.value.until_ms and sim.sim.clock.now_ms() >= info.value.until_ms
        assert next(f for f in await admin.faults() if f["id"] == fault)["hits"] == 1  # nothing sent during the ban


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, Retryable),  # 503 -1008 overloaded
        ({"status": 503, "code": -1001, "msg": "Service Unavailable."}, Retryable),
        ({"status": 400, "code": -2019, "msg": "Margin is insufficient."}, Rejected),
        ({"status": 401, "code": -2015, "msg": "Invalid API-key, IP, or permissions for action"}, AuthError),
    ],
)
async def test_fail_requests_produces_the_matching_class(spec: dict[str, object], expected: type) -> None:
    async with running_sim() as sim, admin_for(sim) as admin, rest_for(sim) as rest:
        await rest.server_time()
        await admin.inject("fail_requests", path="/fapi/v1/order", method="POST", **spec)
        with pytest.raises(expected) as info:
            await rest.place_order(limit_buy("fail-1"))
        assert type(info.value) is expected
        with pytest.raises(OrderNotFound):
            await rest.get_order("BTCUSDT", client_order_id="fail-1")  # it really never happened


@pytest.mark.parametrize("mode", ["503", "-1007", "timeout"])
async def test_unknown_outcome_is_reported_and_the_order_can_be_found_by_client_id(mode: str) -> None:
    async with running_sim() as sim, admin_for(sim) as admin, rest_for(sim, timeout_s=0.5) as rest:
        await rest.server_time()
        await admin.inject("unknown_outcome", mode=mode, path="/fapi/v1/order", method="POST", hold_s=2)
        with pytest.raises(OutcomeUnknown):
            await rest.place_order(limit_buy(f"unknown-{mode}"))
        order = await rest.get_order("BTCUSDT", client_order_id=f"unknown-{mode}")
        assert order.status is OrderStatus.NEW  # it was executed: a blind retry would double it


async def test_unknown_outcome_of_a_read_is_simply_retryable() -> None:
    async with running_sim() as sim, admin_for(sim) as admin, rest_for(sim) as rest:
        await admin.inject("unknown_outcome", mode="503", path="/fapi/v1/klines")
        with pytest.raises(Retryable):
            await rest.klines("BTCUSDT", limit=5)
        assert len(await rest.klines("BTCUSDT", limit=5)) == 5


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (limit_buy("f-tick", price="10000.05"), -4014),  # off the 0.10 tick
        (limit_buy("f-prec", price="10000.123456789"), -1111),
        (limit_buy("f-notional", qty="0.001", price="20000.0"), -4164),  # 20 < 100 USDT
        (limit_buy("f-qty", qty="0"), -4003),
    ],
)
async def test_filter_violations_are_rejected_with_binance_codes(request_: OrderRequest, code: int) -> None:
    async with running_sim() as sim, rest_for(sim) as rest:
        with pytest.raises(Rejected) as info:
            await rest.place_order(request_)
        assert info.value.code == code and type(info.value) is Rejected


async def test_unknown_orders_are_order_not_found() -> None:
    async with running_sim() as sim, rest_for(sim) as rest:
        with pytest.raises(OrderNotFound) as info:
            await rest.cancel_order("BTCUSDT", client_order_id="never-placed")
        assert info.value.code == -2011
        with pytest.raises(OrderNotFound) as info:
            await rest.get_order("BTCUSDT", client_order_id="never-placed")
        assert info.value.code == -2013


async def test_bad_key_or_secret_is_an_auth_error() -> None:
    async with running_sim() as sim:
        async with rest_for(sim, key="no-such-key") as rest:
            with pytest.raises(AuthError):
                await rest.balances()
        async with rest_for(sim, secret="wrong-secret") as rest:
            with pytest.raises(AuthError) as info:
                await rest.balances()
            assert info.value.code == -1022


async def test_concurrent_requests_each_get_their_own_response_headers() -> None:
    async with running_sim() as sim, rest_for(sim) as rest:
        await rest.server_time()
        governor = rest.governor
        observed: list[int] = []
        observe = governor.observe

        def recording(permit: Permit, headers: Mapping[str, str]) -> None:
            observed.append(int(headers["x-mbx-used-weight-1m"]))
            observe(permit, headers)

        governor.observe = recording  # type: ignore[method-assign]
        await asyncio.gather(*(rest.server_time() for _ in range(20)))
        first = min(observed)  # each call saw its own count: a shared last_response_headers would repeat one
        assert sorted(observed) == list(range(first, first + 20))


async def test_the_governor_keeps_a_burst_under_the_limits_published_in_exchange_info() -> None:
    async with running_sim(weight_limit_1m=60) as sim, rest_for(sim) as rest:
        await rest.exchange_info()
        assert rest.governor.limits.weight_per_minute == 60
        # 40 klines calls of weight 2 = 80 > 60: without the governor the sim answers 429.
        results = await asyncio.gather(*(rest.klines("BTCUSDT", limit=100) for _ in range(40)))
        assert len(results) == 40  # nobody failed: callers queued into the next window


async def test_order_bursts_stay_under_the_ten_second_order_limit() -> None:
    async with running_sim(orders_limit_10s=3) as sim, rest_for(sim) as rest:
        await rest.exchange_info()
        assert rest.governor.limits.orders_per_10s == 3
        # Start the burst at the very start of an exchange 10-second window: at speed 1 on virtual
        # time the engine's server-time estimate is exact, so its windows are the exchange's.
        await asyncio.sleep(-sim.sim.clock.now_ms() % 10_000 / 1000)
        first = sim.sim.clock.now_ms() // 10_000
        assert rest.server_clock.now_ms() // 10_000 == first
        orders = await asyncio.gather(*(rest.place_order(limit_buy(f"burst-{i}")) for i in range(6)))
        assert len({o.order_id for o in orders}) == 6  # no -1015: placements waited for new windows
        per_window = Counter(o.update_time_ms // 10_000 - first for o in orders)
        assert min(per_window) == 0 and len(per_window) >= 2
        assert max(per_window.values()) <= 3  # never more than the exchange allows in one window


async def test_health_reports_offset_and_rate_state() -> None:
    async with running_sim() as sim, rest_for(sim) as rest:
        await rest.exchange_info()
        await rest.place_order(limit_buy("h-1"))
        health = rest.status()
        assert health["clock_syncs"] == 1 and health["server_round_trip_ms"] is not None
        assert health["used_weight_1m"] >= 2 and health["orders_10s"] == 1 and health["rest_queued"] == 0
        with pytest.raises(ValueError):
            await rest.klines("BTCUSDT", limit=1501)  # refused locally, nothing sent


async def test_kill_switch_calls_cancel_everything_and_reconciliation_sees_algo_orders() -> None:
    async with running_sim() as sim, rest_for(sim) as rest:
        assert await rest.hedge_mode() is False
        await rest.place_order(limit_buy("k-1"))
        await rest.place_order(limit_buy("k-2", price="10000.5"))
        stop = OrderRequest(
            "BTCUSDT",
            Side.SELL,
            OrderType.STOP_MARKET,
            Decimal("0.010"),
            "k-algo",
            trigger_price=Decimal("1000.0"),
        )
        await rest.place_algo_order(stop)
        assert [a.client_algo_id for a in await rest.open_algo_orders("BTCUSDT")] == ["k-algo"]
        assert len(await rest.open_orders("BTCUSDT")) == 2
        await rest.cancel_all_orders("BTCUSDT")
        await rest.cancel_all_algo_orders("BTCUSDT")
        assert await rest.open_orders("BTCUSDT") == []
        assert await rest.open_algo_orders() == []
