"""What the simulator sends has the keys and value types of Binance's recorded real payloads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from aegis.sim.config import SimConfig
from aegis.sim.server import SimServer
from tests.fixtures import binance_obj
from tests.sim.rest_helpers import Raw, on_tick
from tests.sim.shapes import shape


def load(name: str) -> Any:
    return binance_obj(name)


def same_shape(ours: Any, real: Any) -> None:
    assert shape(ours) == shape(real)
    if isinstance(real, dict):
        assert list(ours) == list(real)  # key order too: some parsers are positional


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(start_ms=1_795_000_000_000)) as s:
        yield s


async def _mark(raw: Raw, symbol: str = "BTCUSDT") -> Decimal:
    return Decimal((await raw.public("/fapi/v1/ticker/price", symbol=symbol))[1]["price"])


async def test_exchange_info_and_klines(raw: Raw) -> None:
    _, info, _ = await raw.public("/fapi/v1/exchangeInfo")
    real = load("fapi_v1_exchangeInfo.json")
    same_shape({k: info[k] for k in real if k != "symbols"}, {k: v for k, v in real.items() if k != "symbols"})
    for ours, theirs in zip(info["symbols"], real["symbols"], strict=True):
        same_shape(ours, theirs)
    _, rows, _ = await raw.public("/fapi/v1/klines", symbol="BTCUSDT", interval="1h", limit=4)
    same_shape(rows, load("fapi_v1_klines.json"))
    assert all(len(r[1].split(".")[1]) == 2 for r in rows)  # BTCUSDT pricePrecision 2, as Binance pads


async def test_book_payloads(raw: Raw) -> None:
    _, book, headers = await raw.public("/fapi/v1/depth", symbol="BTCUSDT", limit=10)
    same_shape(book, load("fapi_v1_depth.json"))
    assert headers["X-MBX-USED-WEIGHT-1M"] == "2" and len(book["bids"]) == len(book["asks"]) == 10
    assert Decimal(book["bids"][0][0]) < Decimal(book["asks"][0][0])
    _, top, _ = await raw.public("/fapi/v1/ticker/bookTicker", symbol="BTCUSDT")
    assert (top["bidPrice"], top["askPrice"]) == (book["bids"][0][0], book["asks"][0][0])
    assert (await raw.public("/fapi/v1/depth", symbol="BTCUSDT", limit=7))[1]["code"] == -1130


async def test_order_payloads(raw: Raw) -> None:
    price = on_tick(await _mark(raw) * Decimal("0.95"), "0.10")
    _, new, _ = await raw.order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.010", price=price
    )
    same_shape(new, load("fapi_v1_order_new.json"))
    _, got, _ = await raw.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=new["orderId"])
    same_shape(got, load("fapi_v1_order_query.json"))
    _, opened, _ = await raw.signed("GET", "/fapi/v1/openOrders", symbol="BTCUSDT")
    same_shape(opened, [load("fapi_v1_order_query.json")])
    _, canceled, _ = await raw.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=new["orderId"])
    same_shape(canceled, load("fapi_v1_order_cancel.json"))


async def test_account_payloads(raw: Raw) -> None:
    await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
    _, trades, _ = await raw.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")
    real_trade = {
        k: v for k, v in load("fapi_v1_userTrades.json")[0].items() if k != "marginAsset"
    }  # dropped 2024-06
    same_shape(trades[0], real_trade)
    _, account, _ = await raw.signed("GET", "/fapi/v3/account")
    real = load("fapi_v3_account.json")
    same_shape(
        {k: v for k, v in account.items() if k != "positions"},
        {k: v for k, v in real.items() if k != "positions"},
    )
    _, risk, _ = await raw.signed("GET", "/fapi/v3/positionRisk")
    real_risk = load("fapi_v3_positionRisk.ccxt.json")[0]
    real_risk.update(adl=2, updateTime=1722161166529)  # ccxt's recorder stringified these two numbers
    same_shape(risk[0], real_risk)
    assert Decimal(risk[0]["notional"]) > 0


async def test_user_events_in_real_order(server: SimServer, raw: Raw) -> None:
    events: list[dict[str, Any]] = []
    server.sim.bus.on_user_event(lambda key, e: events.append(e))
    mark = await _mark(raw)
    marketable = on_tick(mark * Decimal("1.01"), "0.10")
    await raw.order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.002", price=marketable
    )
    opening = [
        load(f"ws_seq_open_{i}")
        for i in (
            "1_TRADE_LITE.json",
            "2_ORDER_TRADE_UPDATE_NEW.json",
            "3_ACCOUNT_UPDATE.json",
            "4_ORDER_TRADE_UPDATE_FILLED.json",
        )
    ]
    assert [(e["e"], e.get("o", {}).get("x")) for e in events] == [
        (e["e"], e.get("o", {}).get("x")) for e in opening
    ]
    for ours, real in zip(events, opening, strict=True):
        same_shape(ours, real)
    events.clear()
    await raw.order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.002", reduceOnly="true")
    closing = [
        load(f"ws_seq_close_{i}")
        for i in (
            "1_TRADE_LITE.json",
            "2_ORDER_TRADE_UPDATE_NEW.json",
            "3_ACCOUNT_UPDATE.json",
            "4_ORDER_TRADE_UPDATE_FILLED.json",
        )
    ]
    for ours, real in zip(events, closing, strict=True):
        same_shape(ours, real)
    assert events[2]["a"]["P"][0]["pa"] == "0" and events[0]["p"] == "0.00"  # flat; MARKET price "0.00"
    events.clear()
    await raw.signed("POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=19)
    same_shape(events[-1], load("ws_ACCOUNT_CONFIG_UPDATE_leverage.json"))
    events.clear()
    _, placed, _ = await raw.order(
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.010",
        price=on_tick(mark * Decimal("0.9"), "0.10"),
    )
    await raw.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"])
    real_cancel = load("ws_ORDER_TRADE_UPDATE_canceled_hedge.json")
    assert [e["o"]["x"] for e in events] == ["NEW", "CANCELED"]
    same_shape(events[-1], real_cancel)


async def test_algo_update_shape_through_trigger(server: SimServer, raw: Raw) -> None:
    events: list[dict[str, Any]] = []
    server.sim.bus.on_user_event(lambda key, e: events.append(e))
    sim = server.sim
    now = sim.clock.now_ms()
    highs = [sim.market.candle("BTCUSDT", now + i * 60_000).high for i in range(1, 120)]
    trigger = on_tick(max(highs) - Decimal("0.1"), "0.10")  # the path reaches it within two hours
    _, algo, _ = await raw.signed(
        "POST",
        "/fapi/v1/algoOrder",
        algoType="CONDITIONAL",
        symbol="BTCUSDT",
        side="BUY",
        type="STOP_MARKET",
        triggerPrice=trigger,
        quantity="0.010",
    )
    assert algo["algoStatus"] == "NEW"
    await server.set_clock(jump_ms=2 * 3600_000)
    algo_events = [e for e in events if e["e"] == "ALGO_UPDATE"]
    assert [e["o"]["X"] for e in algo_events] == ["NEW", "TRIGGERING", "TRIGGERED", "FINISHED"]
    real = load("ws_ALGO_UPDATE_triggered.json")["data"]
    same_shape(algo_events[2], real)
    order_id = int(algo_events[2]["o"]["ai"])
    fills = [e for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["X"] == "FILLED"]
    assert fills and fills[0]["o"]["i"] == order_id and fills[0]["o"]["ot"] == "STOP_MARKET"
    _, got, _ = await raw.signed("GET", "/fapi/v1/algoOrder", algoId=algo["algoId"])
    assert got["algoStatus"] == "FINISHED" and got["actualOrderId"] == str(order_id)
