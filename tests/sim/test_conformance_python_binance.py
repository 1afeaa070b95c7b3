"""python-binance's AsyncClient, unchanged but for its base URLs, trades on the simulator."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from binance.exceptions import BinanceAPIException

from aegis.sim import fillmodel
from aegis.sim.config import DEMO_ACCOUNT, AccountSpec, SimConfig
from aegis.sim.server import SimServer
from tests.sim.rest_helpers import on_tick, python_binance_client

POOR = AccountSpec("poor-key", "poor-secret", Decimal("10"))
START = 1_795_000_050_000  # 30 s into a minute: a test never sees the forming bar roll over


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(start_ms=START, accounts=(DEMO_ACCOUNT, POOR))) as s:
        yield s


@pytest.fixture
async def client(server: SimServer) -> AsyncIterator[Any]:
    c = await python_binance_client(server)
    yield c
    await c.close_connection()


async def _mark(client: Any, symbol: str = "BTCUSDT") -> Decimal:
    return Decimal((await client.futures_symbol_ticker(symbol=symbol))["price"])


async def test_market_data(client: Any) -> None:
    assert await client.futures_ping() == {}
    info = await client.futures_exchange_info()
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    assert {f["filterType"] for f in btc["filters"]} >= {
        "PRICE_FILTER",
        "LOT_SIZE",
        "MARKET_LOT_SIZE",
        "MIN_NOTIONAL",
        "PERCENT_PRICE",
        "MAX_NUM_ORDERS",
    }
    rows = await client.futures_klines(symbol="BTCUSDT", interval="1m", limit=1500)
    assert len(rows) == 1500
    opens = [r[0] for r in rows]
    assert opens == sorted(opens) and all(b - a == 60_000 for a, b in itertools.pairwise(opens))
    server_time = (await client.futures_time())["serverTime"]
    assert rows[-1][0] <= server_time <= rows[-1][6]  # the still-forming bar is last


async def test_historical_klines_paging(server: SimServer, client: Any) -> None:
    start = server.sim.clock.now_ms() - 2500 * 60_000
    rows = await client.futures_historical_klines("BTCUSDT", "1m", start)  # three pages
    after = server.sim.clock.now_ms()
    opens = [r[0] for r in rows]
    assert opens[0] == start - start % 60_000 + 60_000 and opens[-1] == after - after % 60_000
    assert all(b - a == 60_000 for a, b in itertools.pairwise(opens))


async def test_limit_order_lifecycle(client: Any) -> None:
    mark = await _mark(client)
    price = on_tick(mark * Decimal("0.97"), "0.10")
    placed = await client.futures_create_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.010", price=price
    )
    assert placed["status"] == "NEW" and placed["price"] == f"{Decimal(price):.2f}"
    assert isinstance(placed["orderId"], int) and placed["orderId"] > 2**53
    got = await client.futures_get_order(symbol="BTCUSDT", orderId=placed["orderId"])
    assert got["clientOrderId"] == placed["clientOrderId"] and "time" in got
    by_client_id = await client.futures_get_order(symbol="BTCUSDT", origClientOrderId=placed["clientOrderId"])
    assert by_client_id["orderId"] == placed["orderId"]
    assert [o["orderId"] for o in await client.futures_get_open_orders(symbol="BTCUSDT")] == [
        placed["orderId"]
    ]
    canceled = await client.futures_cancel_order(
        symbol="BTCUSDT", orderId=placed["orderId"]
    )  # params in body
    assert canceled["status"] == "CANCELED"
    assert await client.futures_get_open_orders(symbol="BTCUSDT") == []


async def test_market_reduce_only_and_account(client: Any) -> None:
    opened = await client.futures_create_order(
        symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010", newOrderRespType="RESULT"
    )
    assert opened["status"] == "FILLED" and Decimal(opened["avgPrice"]) > 0
    pos = await client.futures_position_information(symbol="BTCUSDT")
    assert Decimal(pos[0]["positionAmt"]) == Decimal("0.010") and Decimal(pos[0]["notional"]) > 0
    account = await client.futures_account()
    assert Decimal(account["totalWalletBalance"]) < Decimal("10000")  # paid the taker fee
    balances = {b["asset"]: b for b in await client.futures_account_balance()}
    assert Decimal(balances["USDT"]["availableBalance"]) < Decimal(balances["USDT"]["balance"])
    closed = await client.futures_create_order(
        symbol="BTCUSDT",
        side="SELL",
        type="MARKET",
        quantity="0.010",
        reduceOnly="true",
        newOrderRespType="RESULT",
    )
    assert closed["status"] == "FILLED"
    assert await client.futures_position_information(symbol="BTCUSDT") == []
    trades = await client.futures_account_trades(symbol="BTCUSDT")
    assert [t["side"] for t in trades] == ["BUY", "SELL"]
    assert (await client.futures_change_leverage(symbol="BTCUSDT", leverage=7))["leverage"] == 7


async def test_algo_stop_market(client: Any) -> None:
    await client.futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
    trigger = on_tick(await _mark(client) * Decimal("0.9"), "0.10")
    algo = await client.futures_create_order(
        symbol="BTCUSDT", side="SELL", type="STOP_MARKET", stopPrice=trigger, closePosition="true"
    )  # python-binance routes this to /fapi/v1/algoOrder
    assert algo["algoStatus"] == "NEW" and algo["orderType"] == "STOP_MARKET"
    assert Decimal(algo["triggerPrice"]) == Decimal(trigger)
    assert [a["algoId"] for a in await client.futures_get_open_algo_orders(symbol="BTCUSDT")] == [
        algo["algoId"]
    ]
    assert (await client.futures_get_algo_order(algoId=algo["algoId"]))["algoStatus"] == "NEW"
    canceled = await client.futures_cancel_order(symbol="BTCUSDT", algoId=algo["algoId"])
    assert canceled["algoId"] == algo["algoId"]
    assert await client.futures_get_open_algo_orders(symbol="BTCUSDT") == []


async def _code(coro: Any) -> int:
    with pytest.raises(BinanceAPIException) as err:
        await coro
    code: int = err.value.code
    return code


async def test_errors_carry_binance_codes(server: SimServer, client: Any) -> None:
    mark = await _mark(client)
    lim = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    near = on_tick(mark * Decimal("0.99"), "0.10")
    order = client.futures_create_order
    assert await _code(order(**lim, quantity="0", price=near)) == -4003
    assert await _code(order(**lim, quantity="0.0001", price=near)) == -4004
    assert await _code(order(**lim, quantity="1001", price=near)) == -4005
    assert await _code(order(**lim, quantity="0.0015", price=near)) == -1111
    assert await _code(order(**lim, quantity="0.010", price="500")) == -4013
    assert await _code(order(**lim, quantity="0.010", price="5000000")) == -4002
    assert await _code(order(**lim, quantity="0.010", price=f"{Decimal(near) + Decimal('0.05')}")) == -4014
    assert await _code(order(**lim, quantity="0.010", price=f"{Decimal(near) + Decimal('0.001')}")) == -1111
    eth = on_tick(await _mark(client, "ETHUSDT") * Decimal("0.99"), "0.01")
    assert (
        await _code(order(**{**lim, "symbol": "ETHUSDT"}, quantity="0.001", price=eth)) == -4164
    )  # < 20 USDT
    assert await _code(order(**lim, quantity="0.010", price=on_tick(mark * Decimal("1.2"), "0.10"))) == -4016
    sell = {**lim, "side": "SELL"}
    assert await _code(order(**sell, quantity="0.010", price=on_tick(mark * Decimal("0.8"), "0.10"))) == -4024
    assert await _code(order(**{**sell, "timeInForce": "GTX"}, quantity="0.010", price=near)) == -5022
    assert (
        await _code(order(symbol="BTCUSDT", side="BUY", type="LIMIT", quantity="0.01", price=near)) == -1102
    )
    assert await _code(order(symbol="NOPEUSDT", side="BUY", type="MARKET", quantity="1")) == -1121
    assert (
        await _code(order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01", reduceOnly="true"))
        == -2022
    )
    assert await _code(order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="121")) == -4005
    assert await _code(client.futures_cancel_order(symbol="BTCUSDT", orderId=123)) == -2011
    assert await _code(client.futures_get_order(symbol="BTCUSDT", orderId=123)) == -2013
    await order(
        **lim, quantity="0.010", price=on_tick(mark * Decimal("0.9"), "0.10"), newClientOrderId="dup-1"
    )
    assert await _code(order(**lim, quantity="0.010", price=near, newClientOrderId="dup-1")) == -4116
    server.sim.exchange.matcher.fill_model = fillmodel.parse("bps:600")  # the best counterparty price is 6% away
    assert await _code(order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")) == -4131
    server.sim.exchange.matcher.fill_model = fillmodel.parse("none")
    # the raw endpoint, as a client that does not reroute conditional types would send it
    assert (
        await _code(
            client._request_futures_api(
                "post",
                "order",
                True,
                data={
                    "symbol": "BTCUSDT",
                    "side": "SELL",
                    "type": "STOP_MARKET",
                    "stopPrice": near,
                    "closePosition": "true",
                },
            )
        )
        == -4120
    )


async def test_auth_and_margin_errors(server: SimServer) -> None:
    poor = await python_binance_client(server, POOR.api_key, POOR.secret)
    wrong_secret = await python_binance_client(server, POOR.api_key, "not-the-secret")
    unknown = await python_binance_client(server, "no-such-key", "x")
    try:
        assert (
            await _code(
                poor.futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
            )
            == -2019
        )
        assert await _code(wrong_secret.futures_account()) == -1022
        with pytest.raises(BinanceAPIException) as err:
            await unknown.futures_account()
        assert err.value.code == -2015 and err.value.status_code == 401
        poor.timestamp_offset = -20_000  # recvWindow is 10000 in python-binance
        with pytest.raises(BinanceAPIException) as err:
            await poor.futures_account()
        assert err.value.code == -1021 and "recvWindow" in err.value.message
        poor.timestamp_offset = 5_000
        with pytest.raises(BinanceAPIException) as err:
            await poor.futures_account()
        assert err.value.code == -1021 and "ahead of the server" in err.value.message
    finally:
        for c in (poor, wrong_secret, unknown):
            await c.close_connection()
