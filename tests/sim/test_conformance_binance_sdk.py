"""Binance's official Python SDK for USD-M futures, unchanged but for its base URLs, on the simulator.

A third independent implementation of the protocol beside python-binance and ccxt. Its REST client
is synchronous (requests), so REST calls run in a worker thread and the test runs on a real-time
loop; every wait is for an event the simulator sends, with a generous bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp
import pytest
from binance_common.configuration import ConfigurationRestAPI, ConfigurationWebSocketStreams
from binance_common.errors import BadRequestError
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
    DerivativesTradingUsdsFutures,
)
from binance_sdk_derivatives_trading_usds_futures.rest_api.models import (
    NewAlgoOrderAlgoTypeEnum,
    NewAlgoOrderSideEnum,
    NewAlgoOrderTypeEnum,
    NewOrderSideEnum,
    NewOrderTimeInForceEnum,
    NewOrderTypeEnum,
)

from aegis.sim.config import DEMO_API_KEY, DEMO_API_SECRET, SimConfig
from aegis.sim.server import SimServer
from tests.sim.rest_helpers import on_tick

pytestmark = pytest.mark.wallclock
T = TypeVar("T")
WAIT_S = 10.0


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(kline_update_ms=250)) as s:
        yield s


@pytest.fixture
def sdk(server: SimServer) -> DerivativesTradingUsdsFutures:
    rest = ConfigurationRestAPI(api_key=DEMO_API_KEY, api_secret=DEMO_API_SECRET, base_path=server.rest_url, retries=0)
    return DerivativesTradingUsdsFutures(
        config_rest_api=rest, config_ws_streams=ConfigurationWebSocketStreams(stream_url=server.ws_url)
    )


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One blocking SDK REST call, off the loop the simulator serves on."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_rest_calls_and_a_conditional_order(sdk: DerivativesTradingUsdsFutures) -> None:
    rest = sdk.rest_api
    info = (await call(rest.exchange_information)).data()
    assert any(s.symbol == "BTCUSDT" for s in info.symbols)
    klines = (await call(rest.kline_candlestick_data, "BTCUSDT", "1m", limit=3)).data()
    assert len(klines) == 3 and klines[0][6] == klines[0][0] + 59_999
    mark = Decimal((await call(rest.symbol_price_ticker_v2, symbol="BTCUSDT")).data().actual_instance.price)
    below = float(on_tick(mark * Decimal("0.95"), "0.10"))
    order = (
        await call(
            rest.new_order, "BTCUSDT", NewOrderSideEnum.BUY, NewOrderTypeEnum.LIMIT,
            time_in_force=NewOrderTimeInForceEnum.GTC, quantity=0.01, price=below,
        )
    ).data()
    assert order.status == "NEW"
    assert (await call(rest.query_order, "BTCUSDT", order_id=order.order_id)).data().status == "NEW"
    assert (await call(rest.cancel_order, "BTCUSDT", order_id=order.order_id)).data().status == "CANCELED"
    stop = (
        await call(
            rest.new_algo_order, NewAlgoOrderAlgoTypeEnum.CONDITIONAL, "BTCUSDT", NewAlgoOrderSideEnum.SELL,
            NewAlgoOrderTypeEnum.STOP_MARKET, quantity=0.01, trigger_price=float(on_tick(mark * Decimal("0.9"), "0.10")),
        )
    ).data()
    assert stop.algo_status == "NEW" and stop.order_type == "STOP_MARKET"
    assert (await call(rest.query_algo_order, algo_id=stop.algo_id)).data().algo_status == "NEW"
    assert (await call(rest.cancel_algo_order, algo_id=stop.algo_id)).data().code == "200"
    account = (await call(rest.account_information_v3)).data()
    assert Decimal(account.total_wallet_balance) == Decimal("10000")
    with pytest.raises(BadRequestError):  # a float the SDK renders with an exponent: Binance's -1100
        await call(rest.new_order, "BTCUSDT", NewOrderSideEnum.BUY, NewOrderTypeEnum.MARKET, quantity=1e-05)


async def _subscribed(server: SimServer) -> None:
    """Until the simulator has the SDK's SUBSCRIBE of the listenKey on a connection."""
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{server.rest_url}/_sim/streams") as r:
                if any(k["connections"] for k in (await r.json())["user"]["keys"]):
                    return
            await asyncio.sleep(0.05)


async def test_market_stream_and_user_data_stream_see_an_order(
    server: SimServer, sdk: DerivativesTradingUsdsFutures
) -> None:
    listen_key = (await call(sdk.rest_api.start_user_data_stream)).data().listen_key
    conn = await sdk.websocket_streams.create_connection()
    klines: asyncio.Queue[Any] = asyncio.Queue()
    user: asyncio.Queue[Any] = asyncio.Queue()
    try:
        (await conn.kline_candlestick_streams(symbol="btcusdt", interval="1m")).on("message", klines.put_nowait)
        (await conn.user_data(listen_key)).on("message", lambda m: user.put_nowait(m.actual_instance))
        kline = await asyncio.wait_for(klines.get(), WAIT_S)
        assert kline.e == "kline" and kline.s == "BTCUSDT"
        await asyncio.wait_for(_subscribed(server), WAIT_S)
        order = (
            await call(sdk.rest_api.new_order, "BTCUSDT", NewOrderSideEnum.BUY, NewOrderTypeEnum.MARKET, quantity=0.01)
        ).data()
        seen: list[Any] = []
        while not any(getattr(e, "o", None) is not None and getattr(e.o, "X", None) == "FILLED" for e in seen):
            seen.append(await asyncio.wait_for(user.get(), WAIT_S))
        updates = [e for e in seen if type(e).__name__ == "OrderTradeUpdate"]
        assert {u.o.i for u in updates} == {order.order_id}
        assert [u.o.x for u in updates] == ["NEW", "TRADE"]
    finally:
        await conn.close_connection()
