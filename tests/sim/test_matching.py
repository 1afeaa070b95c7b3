"""Matching and accounts: resting orders fill as the replayed price path crosses them, with
partial fills, fees, PnL, margin, reduce-only, time-in-force and conditional orders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from aegis.sim.candles import MINUTE_MS
from aegis.sim.config import DEMO_ACCOUNT, AccountSpec, SimConfig
from aegis.sim.server import SimServer
from aegis.sim.simulator import Simulator
from tests.sim.rest_helpers import Raw, on_tick

START = 1_795_000_010_000
OTHER = AccountSpec("other-key", "other-secret", Decimal("5000"))


def path_extremes(sim: Simulator, symbol: str, minutes: int) -> tuple[Decimal, Decimal]:
    """Lowest and highest price the path visits from now through ``minutes`` whole bars ahead."""
    now = sim.clock.now_ms()
    bar = now - now % MINUTE_MS
    lo, hi = sim.market.path_range(symbol, sim.market.candle(symbol, bar), now - bar, MINUTE_MS)
    for i in range(1, minutes + 1):
        c = sim.market.candle(symbol, bar + i * MINUTE_MS)
        lo, hi = min(lo, c.low), max(hi, c.high)
    return lo, hi


def minutes_to_end(sim: Simulator, minutes: int) -> int:
    now = sim.clock.now_ms()
    return (now - now % MINUTE_MS) + (minutes + 1) * MINUTE_MS - now


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(start_ms=START, accounts=(DEMO_ACCOUNT, OTHER))) as s:
        yield s


async def limit(
    raw: Raw, side: str, price: Decimal | str, qty: str = "0.010", tif: str = "GTC", **kw: Any
) -> Any:
    _status, body, _ = await raw.order(
        symbol="BTCUSDT", side=side, type="LIMIT", timeInForce=tif, quantity=qty, price=str(price), **kw
    )
    return body


async def test_resting_limit_fills_exactly_when_the_path_reaches_it(server: SimServer, raw: Raw) -> None:
    sim = server.sim
    lo, _ = path_extremes(sim, "BTCUSDT", 30)
    mark = sim.market.price("BTCUSDT")
    assert lo < mark  # precondition of this deterministic replay window
    touched = await limit(raw, "BUY", lo)
    below = await limit(raw, "BUY", lo - Decimal("0.1"))
    assert touched["status"] == below["status"] == "NEW"
    await server.set_clock(jump_ms=minutes_to_end(sim, 30))
    _, got, _ = await raw.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=touched["orderId"])
    assert got["status"] == "FILLED" and Decimal(got["avgPrice"]) == lo  # a maker fill at its limit price
    _, still, _ = await raw.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=below["orderId"])
    assert still["status"] == "NEW"
    _, trades, _ = await raw.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")
    assert trades[0]["maker"] is True
    assert Decimal(trades[0]["commission"]) == (lo * Decimal("0.010") * Decimal("0.0002")).quantize(
        Decimal("1e-8")
    )


async def test_orders_fill_on_the_accelerated_clock_without_any_stream() -> None:
    async with SimServer(SimConfig(start_ms=START, speed=3600)) as server:
        raw = Raw(server)
        try:
            _, hi = path_extremes(server.sim, "ETHUSDT", 20)
            sell = on_tick(hi - Decimal("0.5"), "0.01")
            _, placed, _ = await raw.order(
                symbol="ETHUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.100", price=sell
            )
            assert placed["status"] == "NEW"
            assert server.sim.market.watched == set()  # nobody streams ETHUSDT
            status = "NEW"
            for _ in range(60):
                await asyncio.sleep(0.05)
                status = (
                    await raw.signed("GET", "/fapi/v1/order", symbol="ETHUSDT", orderId=placed["orderId"])
                )[1]["status"]
                if status == "FILLED":
                    break
            assert status == "FILLED"
        finally:
            await raw.close()


async def test_large_orders_fill_partially_over_the_path() -> None:
    config = SimConfig(start_ms=START, fill_liquidity=Decimal("0.0005"))
    async with SimServer(config) as server:
        raw = Raw(server)
        events: list[dict[str, Any]] = []
        server.sim.bus.on_user_event(lambda key, e: events.append(e))
        try:
            lo, _ = path_extremes(server.sim, "BTCUSDT", 60)
            placed = await limit(raw, "BUY", lo + Decimal("50"), qty="0.500")
            await server.set_clock(jump_ms=minutes_to_end(server.sim, 60))
            _, got, _ = await raw.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"])
        finally:
            await raw.close()
    fills = [e["o"] for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE"]
    assert len(fills) >= 2 and fills[0]["X"] == "PARTIALLY_FILLED"
    cumulative = [Decimal(f["z"]) for f in fills]
    assert cumulative == sorted(cumulative) and sum(Decimal(f["l"]) for f in fills) == cumulative[-1]
    assert Decimal(got["executedQty"]) == cumulative[-1] and got["status"] in ("PARTIALLY_FILLED", "FILLED")


async def test_realized_pnl_fees_and_wallet(server: SimServer, raw: Raw) -> None:
    _, opened, _ = await raw.order(
        symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.050", newOrderRespType="RESULT"
    )
    await server.set_clock(jump_ms=45 * MINUTE_MS)
    _, closed, _ = await raw.order(
        symbol="BTCUSDT",
        side="SELL",
        type="MARKET",
        quantity="0.050",
        reduceOnly="true",
        newOrderRespType="RESULT",
    )
    p1, p2, qty = Decimal(opened["avgPrice"]), Decimal(closed["avgPrice"]), Decimal("0.050")
    assert p1 != p2  # the market moved in 45 minutes
    fees = (p1 * qty * Decimal("0.0005")).quantize(Decimal("1e-8")) + (p2 * qty * Decimal("0.0005")).quantize(
        Decimal("1e-8")
    )
    _, trades, _ = await raw.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")
    assert Decimal(trades[1]["realizedPnl"]) == (p2 - p1) * qty
    _, account, _ = await raw.signed("GET", "/fapi/v3/account")
    assert Decimal(account["totalWalletBalance"]) == Decimal(10000) + (p2 - p1) * qty - fees
    assert account["positions"] == []


async def test_unrealized_pnl_entry_and_margin(server: SimServer, raw: Raw) -> None:
    await raw.signed("POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=10)
    await raw.order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.020")
    await server.set_clock(jump_ms=20 * MINUTE_MS)
    _, risk, _ = await raw.signed("GET", "/fapi/v2/positionRisk", symbol="BTCUSDT")
    row = risk[0]
    amt, entry, mark = Decimal(row["positionAmt"]), Decimal(row["entryPrice"]), Decimal(row["markPrice"])
    assert amt == Decimal("-0.020") and row["leverage"] == "10"
    assert Decimal(row["unRealizedProfit"]) == amt * (mark - entry)
    assert Decimal(row["notional"]) == amt * mark < 0  # signed: ccxt reads the side from it
    _, v3, _ = await raw.signed("GET", "/fapi/v3/positionRisk")
    assert Decimal(v3[0]["initialMargin"]) == abs(amt * mark) / 10
    assert Decimal(v3[0]["liquidationPrice"]) > mark  # a short is liquidated above


async def test_time_in_force(server: SimServer, raw: Raw) -> None:
    mark = server.sim.market.price("BTCUSDT")
    far = on_tick(mark * Decimal("0.97"), "0.10")
    through = on_tick(mark * Decimal("1.01"), "0.10")
    assert (await limit(raw, "BUY", far, tif="IOC", newOrderRespType="RESULT"))["status"] == "EXPIRED"
    assert (await limit(raw, "BUY", far, tif="FOK"))["code"] == -5021
    filled = await limit(raw, "BUY", through, tif="IOC", newOrderRespType="RESULT")
    assert (
        filled["status"] == "FILLED" and Decimal(filled["avgPrice"]) == mark
    )  # takes at the market, not its limit
    assert (await limit(raw, "SELL", through, tif="GTX"))["status"] == "NEW"  # post-only that rests
    assert (await limit(raw, "BUY", through, tif="GTX"))["code"] == -5022
    ack = await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
    assert ack[1]["status"] == "NEW" and ack[1]["executedQty"] == "0.000"  # ACK is the default


async def test_reduce_only_rules(server: SimServer, raw: Raw) -> None:
    events: list[dict[str, Any]] = []
    server.sim.bus.on_user_event(lambda key, e: events.append(e))
    mark = server.sim.market.price("BTCUSDT")
    await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
    assert (await limit(raw, "BUY", on_tick(mark * Decimal("0.99"), "0.10"), reduceOnly="true"))[
        "code"
    ] == -2022
    take_profit = await limit(raw, "SELL", on_tick(mark * Decimal("1.04"), "0.10"), reduceOnly="true")
    assert take_profit["status"] == "NEW"
    tiny = await limit(raw, "SELL", on_tick(mark * Decimal("1.04"), "0.10"), qty="0.001", reduceOnly="true")
    assert tiny["status"] == "NEW"  # below MIN_NOTIONAL, allowed because reduce-only
    await raw.order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.010", reduceOnly="true")
    expired = [e["o"]["i"] for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "EXPIRED"]
    assert sorted(expired) == sorted([take_profit["orderId"], tiny["orderId"]])  # nothing left to reduce
    _, still_open, _ = await raw.signed("GET", "/fapi/v1/openOrders", symbol="BTCUSDT")
    assert still_open == []


async def test_margin_and_accounts_are_separate(server: SimServer, raw: Raw) -> None:
    other = Raw(server, OTHER.api_key, OTHER.secret)
    try:
        mark = server.sim.market.price("BTCUSDT")
        bid = on_tick(mark * Decimal("0.96"), "0.10")
        # 5000 USDT at 20x buys ~100000 USDT of exposure: 0.9 BTC fits, 1.0 does not once 0.9 is working
        assert (
            await other.order(
                symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.9", price=bid
            )
        )[0] == 200
        status, body, _ = await other.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.2")
        assert (status, body) == (400, {"code": -2019, "msg": "Margin is insufficient."})
        _, balances, _ = await other.signed("GET", "/fapi/v2/balance")
        usdt = next(b for b in balances if b["asset"] == "USDT")
        assert Decimal(usdt["availableBalance"]) == Decimal(5000) - Decimal("0.9") * Decimal(bid) / 20
        assert (await raw.signed("GET", "/fapi/v1/openOrders"))[1] == []  # the demo account sees none of it
        _, mine, _ = await other.signed("GET", "/fapi/v1/openOrders")
        assert len(mine) == 1
        assert (await other.signed("POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=126))[1][
            "code"
        ] == -4028
    finally:
        await other.close()


async def test_algo_take_profit_closes_the_position(server: SimServer, raw: Raw) -> None:
    sim = server.sim
    await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
    _, hi = path_extremes(sim, "BTCUSDT", 120)
    mark = sim.market.price("BTCUSDT")
    params = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "closePosition": "true"}
    _status, body, _ = await raw.signed(
        "POST",
        "/fapi/v1/algoOrder",
        type="TAKE_PROFIT_MARKET",
        triggerPrice=on_tick(mark * Decimal("0.99"), "0.10"),
        **params,
    )
    assert body["code"] == -2021  # a take-profit below the market would trigger at once
    trigger = on_tick(hi - Decimal("1"), "0.10")
    _, tp, _ = await raw.signed(
        "POST", "/fapi/v1/algoOrder", type="TAKE_PROFIT_MARKET", triggerPrice=trigger, **params
    )
    _, sl, _ = await raw.signed(
        "POST",
        "/fapi/v1/algoOrder",
        type="STOP_MARKET",
        triggerPrice=on_tick(mark * Decimal("0.5"), "0.10"),
        **params,
    )
    _, open_algo, _ = await raw.signed("GET", "/fapi/v1/openAlgoOrders")
    assert {a["algoId"] for a in open_algo} == {tp["algoId"], sl["algoId"]}
    await server.set_clock(jump_ms=minutes_to_end(sim, 120))
    _, got, _ = await raw.signed("GET", "/fapi/v1/algoOrder", algoId=tp["algoId"])
    assert got["algoStatus"] == "FINISHED"
    assert (await raw.signed("GET", "/fapi/v3/positionRisk"))[1] == []  # closed by the take-profit
    _, trades, _ = await raw.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")
    assert trades[-1]["side"] == "SELL" and Decimal(trades[-1]["price"]) >= Decimal(trigger)
    _, done, _ = await raw.signed("DELETE", "/fapi/v1/algoOpenOrders", symbol="BTCUSDT")
    assert done["code"] == 200
    assert (await raw.signed("GET", "/fapi/v1/openAlgoOrders"))[1] == []
    assert (await raw.signed("DELETE", "/fapi/v1/algoOrder", algoId=sl["algoId"]))[1]["code"] == -2011


async def test_duplicate_client_id_only_among_open_orders(raw: Raw, server: SimServer) -> None:
    mark = server.sim.market.price("BTCUSDT")
    bid = on_tick(mark * Decimal("0.97"), "0.10")
    first = await limit(raw, "BUY", bid, newClientOrderId="my-order.1")
    assert (await limit(raw, "BUY", bid, newClientOrderId="my-order.1"))["code"] == -4116
    await raw.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="my-order.1")
    again = await limit(raw, "BUY", bid, newClientOrderId="my-order.1")
    assert again["status"] == "NEW" and again["orderId"] != first["orderId"]
    assert (await limit(raw, "BUY", bid, newClientOrderId="bad id!"))["code"] == -4015


async def test_good_till_date_orders_expire_on_the_exchange_clock(server: SimServer, raw: Raw) -> None:
    now = server.sim.clock.now_ms()
    bid = on_tick(server.sim.market.price("BTCUSDT") * Decimal("0.90"), "0.10")
    assert (await limit(raw, "BUY", bid, tif="GTD", goodTillDate=now + 60_000))[
        "code"
    ] == -1130  # < now+600 s
    gtd = now + 900_500  # Binance keeps second precision
    placed = await limit(raw, "BUY", bid, tif="GTD", goodTillDate=gtd)
    assert placed["status"] == "NEW" and placed["goodTillDate"] == gtd - gtd % 1000

    async def status() -> str:
        _, got, _ = await raw.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"])
        return str(got["status"])

    await server.set_clock(jump_ms=14 * MINUTE_MS)
    assert await status() == "NEW"
    await server.set_clock(jump_ms=2 * MINUTE_MS)
    assert await status() == "EXPIRED"
