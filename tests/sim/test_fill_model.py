"""Taker fills priced by a named fill model; closed-only kline publishing for backtests."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import orjson
import pytest

from aegis.sim import fillmodel
from aegis.sim.config import SimConfig
from aegis.sim.server import SimServer
from aegis.sim.symbols import ExchangeInfo
from tests.sim.rest_helpers import Raw, on_tick

START = 1_700_000_000_000
BTC = ExchangeInfo.load(SimConfig()).symbols["BTCUSDT"]
TICK = Decimal("0.10")


def test_models_price_a_taker_worse_by_their_rule() -> None:
    px, vol = Decimal("50000.00"), Decimal("100")
    assert fillmodel.parse("none").price(BTC, "BUY", px, Decimal(1), vol) == px
    assert fillmodel.parse("ticks:3").price(BTC, "BUY", px, Decimal(1), vol) == px + 3 * TICK
    assert fillmodel.parse("ticks:3").price(BTC, "SELL", px, Decimal(1), vol) == px - 3 * TICK
    assert fillmodel.parse("bps:10").price(BTC, "BUY", px, Decimal(1), vol) == Decimal("50050.00")
    impact = fillmodel.parse("impact:0.1")
    assert impact.price(BTC, "BUY", px, Decimal(1), vol) == Decimal("50050.0")  # 1% of the volume: +0.1%
    assert impact.price(BTC, "SELL", px, Decimal(10), vol) == Decimal("49500.0")  # 10%: -1%
    assert impact.price(BTC, "BUY", px, Decimal("0.001"), vol) == Decimal("50000.1"), "rounded against the taker"
    for bad in ("", "ticks", "ticks:-1", "ticks:1.5", "bps:abc", "impact:-0.1", "impact:NaN", "vwap:1"):
        with pytest.raises(ValueError):
            fillmodel.parse(bad)
    assert "share of the 1m candle's volume" in str(impact)


async def _market(server: SimServer, side: str, qty: str) -> tuple[Decimal, Decimal]:
    """(price just before, average fill price) of a MARKET order."""
    raw = Raw(server)
    try:
        mark = Decimal((await raw.public("/fapi/v1/ticker/price", symbol="BTCUSDT"))[1]["price"])
        status, body, _ = await raw.order(symbol="BTCUSDT", side=side, type="MARKET", quantity=qty, newOrderRespType="RESULT")
        assert status == 200, body
        return mark, Decimal(body["avgPrice"])
    finally:
        await raw.close()


@pytest.mark.parametrize(("model", "buy_shift"), [("none", Decimal(0)), ("ticks:2", 2 * TICK)])
async def test_market_orders_fill_by_the_model_and_the_state_names_it(model: str, buy_shift: Decimal) -> None:
    async with SimServer(SimConfig(start_ms=START, fill_model=model)) as server:
        mark, avg = await _market(server, "BUY", "0.010")
        assert avg == mark + buy_shift
        mark, avg = await _market(server, "SELL", "0.010")
        assert avg == mark - buy_shift
        assert (await server.state())["fill_model"] == str(fillmodel.parse(model))


async def test_impact_grows_with_the_share_of_the_candles_volume() -> None:
    async with SimServer(SimConfig(start_ms=START, fill_model="impact:0.5")) as server:
        small_mark, small = await _market(server, "BUY", "0.010")
        big_mark, big = await _market(server, "BUY", "1.000")
        assert small - small_mark < big - big_mark


async def test_a_triggered_stop_market_fills_by_the_model() -> None:
    async with SimServer(SimConfig(start_ms=START, fill_model="ticks:5")) as server:
        raw = Raw(server)
        mark = Decimal((await raw.public("/fapi/v1/ticker/price", symbol="BTCUSDT"))[1]["price"])
        await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
        trigger = Decimal(on_tick(mark * Decimal("0.9995"), "0.10"))
        _, algo, _ = await raw.signed(
            "POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT", side="SELL",
            type="STOP_MARKET", quantity="0.010", triggerPrice=str(trigger), reduceOnly="true",
        )
        for _ in range(240):  # walk the path until it crosses the trigger (a few hours at most)
            await server.set_clock(jump_ms=60_000)
            _, got, _ = await raw.signed("GET", "/fapi/v1/algoOrder", algoId=algo["algoId"])
            if got["algoStatus"] == "FINISHED":
                break
        assert got["algoStatus"] == "FINISHED"
        _, order, _ = await raw.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=int(got["actualOrderId"]))
        assert Decimal(order["avgPrice"]) == trigger - 5 * TICK
        await raw.close()


async def test_closed_only_publishing_sends_one_frame_per_candle() -> None:
    async with SimServer(SimConfig(start_ms=START, partial_klines=False)) as server, aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{server.ws_url}/market/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m") as ws:
            frames = []
            for _ in range(6):
                frames.append(orjson.loads((await ws.receive(timeout=120)).data))
            assert all(f["data"]["k"]["x"] for f in frames), "no x=false update"
            opens = sorted({(f["data"]["s"], f["data"]["k"]["t"]) for f in frames})
            assert len(opens) == 6, "exactly one frame per candle per symbol"
