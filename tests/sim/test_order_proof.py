"""What the order manager's proof needs from the exchange: query lag, the countdown, the audit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest

from aegis.sim.admin import SimAdmin
from aegis.sim.config import DEMO_API_KEY, SimConfig
from aegis.sim.server import SimServer
from tests.sim.rest_helpers import Raw, on_tick

START = 1_700_000_000_000


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(start_ms=START)) as s:
        yield s


@pytest.fixture
async def admin(server: SimServer) -> AsyncIterator[SimAdmin]:
    async with SimAdmin(server.rest_url) as a:
        yield a


async def _mark(raw: Raw) -> Decimal:
    return Decimal((await raw.public("/fapi/v1/ticker/price", symbol="BTCUSDT"))[1]["price"])


async def _resting_buy(raw: Raw, cid: str) -> Any:
    price = on_tick(await _mark(raw) * Decimal("0.97"), "0.10")
    return await raw.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price=price, newClientOrderId=cid)


async def _views(raw: Raw, order_id: int) -> tuple[int, list[int], list[int], list[int]]:
    """(GET order's code or 0, openOrders ids, allOrders ids, userTrades order ids)."""
    _, got, _ = await raw.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=order_id)
    _, open_, _ = await raw.signed("GET", "/fapi/v1/openOrders", symbol="BTCUSDT")
    _, all_, _ = await raw.signed("GET", "/fapi/v1/allOrders", symbol="BTCUSDT")
    _, trades, _ = await raw.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")
    return got.get("code", 0), [o["orderId"] for o in open_], [o["orderId"] for o in all_], [t["orderId"] for t in trades]


async def test_an_accepted_order_is_invisible_to_every_query_for_the_lag_then_appears(
    server: SimServer, raw: Raw, admin: SimAdmin
) -> None:
    await admin.inject("order_lag", seconds=30, count=2)
    _, filled, _ = await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newOrderRespType="RESULT")
    _, resting, _ = await _resting_buy(raw, "rest-1")
    assert filled["status"] == "FILLED" and resting["status"] == "NEW"
    for order_id in (filled["orderId"], resting["orderId"]):
        code, open_, all_, trades = await _views(raw, order_id)
        assert code == -2013 and order_id not in open_ + all_ + trades
    truth = (await server.state())["accounts"][DEMO_API_KEY]
    assert truth["positions"][0]["positionAmt"] == "0.010", "the order matched while invisible"
    assert [o["orderId"] for o in truth["open_orders"]] == [resting["orderId"]]
    _, again, _ = await _resting_buy(raw, "rest-1")
    assert again["code"] == -4116, "a resend with the same client id proves the first one landed"
    _, third, _ = await _resting_buy(raw, "rest-3")
    assert (await _views(raw, third["orderId"]))[0] == 0, "count=2: the third order is visible at once"
    await asyncio.sleep(30)
    code, open_, all_, trades = await _views(raw, filled["orderId"])
    assert code == 0 and filled["orderId"] in all_ and filled["orderId"] in trades
    assert resting["orderId"] in open_
    assert (await raw.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=resting["orderId"]))[0] == 200
    row = next(f for f in await admin.faults() if f["kind"] == "order_lag")
    assert row["status"] == "done" and row["hits"] == 2


async def _user_ws(server: SimServer, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    async with session.post(f"{server.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": DEMO_API_KEY}) as r:
        key = (await r.json())["listenKey"]
    return await session.ws_connect(f"{server.ws_url}/private/ws?listenKey={key}")


async def _events(ws: aiohttp.ClientWebSocketResponse, wait: float) -> list[str]:
    out: list[str] = []
    while True:
        try:
            msg = await ws.receive(timeout=wait)
        except TimeoutError:
            return out
        out.append(orjson.loads(msg.data)["e"])


@pytest.mark.parametrize(("events", "before"), [("live", 4), ("delayed", 0)])
async def test_user_events_of_a_lagged_order_are_live_or_held_until_it_shows(
    server: SimServer, raw: Raw, admin: SimAdmin, events: str, before: int
) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await _user_ws(server, session)
        await admin.inject("order_lag", seconds=20, events=events)
        await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
        assert len(await _events(ws, 10)) == before  # 10 exchange seconds on the virtual loop
        later = await _events(ws, 15)
        assert later == ([] if before else ["TRADE_LITE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE"])
        await ws.close()


async def test_accepted_answered_with_an_error_and_invisible(server: SimServer, raw: Raw, admin: SimAdmin) -> None:
    """unknown_outcome + order_lag: the worst case the order manager must resolve without a duplicate."""
    await admin.inject("order_lag", seconds=60)
    await admin.inject("unknown_outcome", path="/fapi/v1/order", method="POST", mode="503")
    status, body, _ = await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newClientOrderId="intent-1")
    assert (status, body["code"]) == (503, -1000)
    _, looked, _ = await raw.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="intent-1")
    assert looked == {"code": -2013, "msg": "Order does not exist."}
    rows = await admin.audit(DEMO_API_KEY)
    # accepted (the ACK body says NEW; the MARKET order filled at once, as /_sim/state shows)
    assert len(rows) == 1 and rows[0]["status"] == "NEW" and rows[0]["clientOrderId"] == "intent-1"
    assert (await server.state())["accounts"][DEMO_API_KEY]["positions"][0]["positionAmt"] == "0.010"
    assert rows[0]["client_saw"]["code"] == -1000


async def test_countdown_cancels_open_orders_of_the_symbol_and_leaves_algo_orders(raw: Raw, server: SimServer) -> None:
    _, order, _ = await _resting_buy(raw, "entry-1")
    stop_px = on_tick(await _mark(raw) * Decimal("0.9"), "0.10")
    _, stop, _ = await raw.signed(
        "POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT", side="SELL",
        type="STOP_MARKET", quantity="0.01", triggerPrice=stop_px,
    )
    status, answer, _ = await raw.signed("POST", "/fapi/v1/countdownCancelAll", symbol="BTCUSDT", countdownTime=5000)
    assert (status, answer) == (200, {"symbol": "BTCUSDT", "countdownTime": "5000"})
    for _ in range(3):  # heartbeats every 4 s keep it from firing
        await asyncio.sleep(4)
        await raw.signed("POST", "/fapi/v1/countdownCancelAll", symbol="BTCUSDT", countdownTime=5000)
    _, open_, _ = await raw.signed("GET", "/fapi/v1/openOrders", symbol="BTCUSDT")
    assert [o["orderId"] for o in open_] == [order["orderId"]]
    await asyncio.sleep(5.5)  # no heartbeat: it fires
    assert (await raw.signed("GET", "/fapi/v1/openOrders", symbol="BTCUSDT"))[1] == []
    _, got, _ = await raw.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=order["orderId"])
    assert got["status"] == "CANCELED"
    _, algos, _ = await raw.signed("GET", "/fapi/v1/openAlgoOrders", symbol="BTCUSDT")
    assert [a["algoId"] for a in algos] == [stop["algoId"]], "conditional orders survive the countdown"


async def test_countdown_zero_stops_it_and_bad_values_are_binances_errors(raw: Raw) -> None:
    _, order, _ = await _resting_buy(raw, "entry-2")
    await raw.signed("POST", "/fapi/v1/countdownCancelAll", symbol="BTCUSDT", countdownTime=2000)
    assert (await raw.signed("POST", "/fapi/v1/countdownCancelAll", symbol="BTCUSDT", countdownTime=0))[1] == {
        "symbol": "BTCUSDT", "countdownTime": "0",
    }
    await asyncio.sleep(5)
    assert [o["orderId"] for o in (await raw.signed("GET", "/fapi/v1/openOrders", symbol="BTCUSDT"))[1]] == [order["orderId"]]
    assert (await raw.signed("POST", "/fapi/v1/countdownCancelAll", symbol="BTCUSDT"))[1]["code"] == -1102
    assert (await raw.signed("POST", "/fapi/v1/countdownCancelAll", symbol="BTCUSDT", countdownTime="1e3"))[1]["code"] == -1100
    assert (await raw.signed("POST", "/fapi/v1/countdownCancelAll", countdownTime="1000"))[1]["code"] == -1102


async def test_the_audit_lists_every_order_request_and_its_answer_in_arrival_order(
    server: SimServer, raw: Raw, admin: SimAdmin
) -> None:
    _, placed, _ = await _resting_buy(raw, "a-1")
    await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.0001")  # -4004
    await raw.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"])
    await raw.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"])  # -2011
    await admin.inject("fail_requests", path="/fapi/v1/order", method="POST", count=1)
    assert (await _resting_buy(raw, "a-2"))[0] == 503  # answered at the gateway: never reached the exchange
    await raw.signed("POST", "/fapi/v1/countdownCancelAll", symbol="BTCUSDT", countdownTime=0)
    rows = await admin.audit(DEMO_API_KEY)
    assert [(r["method"], r["path"], r["http_status"], r.get("code"), r.get("status")) for r in rows] == [
        ("POST", "/fapi/v1/order", 200, None, "NEW"),
        ("POST", "/fapi/v1/order", 400, -4004, None),
        ("DELETE", "/fapi/v1/order", 200, None, "CANCELED"),
        ("DELETE", "/fapi/v1/order", 400, -2011, None),
        ("POST", "/fapi/v1/countdownCancelAll", 200, None, None),
    ]
    assert rows[0]["orderId"] == placed["orderId"] and rows[0]["clientOrderId"] == "a-1"
    assert rows[1]["msg"] == "Quantity less than min quantity." and rows[1]["params"]["quantity"] == "0.0001"
    assert "signature" not in rows[0]["params"] and "timestamp" not in rows[0]["params"]
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    assert await admin.audit(DEMO_API_KEY, since=rows[-2]["seq"]) == rows[-1:]
    assert await admin.audit("someone-else") == []


def test_the_audit_keeps_its_configured_number_of_rows() -> None:
    """A long run (a backtest's month) must not keep a row per order request forever."""
    from aegis.sim.config import SimConfig
    from aegis.sim.simulator import Simulator

    sim = Simulator(SimConfig(start_ms=1_795_000_000_000, audit_rows=3))
    for i in range(10):
        sim.audit.record(DEMO_API_KEY, "POST", "/fapi/v1/order", {"newClientOrderId": f"c{i}"}, 200, {"orderId": i})
    assert [r["orderId"] for r in sim.audit.select()] == [7, 8, 9]
