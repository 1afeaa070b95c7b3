"""ccxt's async binanceusdm, unchanged but for its URLs, trades on the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import pytest

from aegis.sim.config import SimConfig
from aegis.sim.server import SimServer
from tests.sim.rest_helpers import ccxt_client, on_tick

BTC = "BTC/USDT:USDT"
# A fixed exchange time: the replayed price path (and so every margin figure asserted below) must
# not depend on the hour the suite runs at.
START = 1_700_000_000_000


@pytest.fixture
async def ex() -> AsyncIterator[Any]:
    async with SimServer(SimConfig(start_ms=START)) as server:
        client = ccxt_client(server)
        try:
            await client.load_markets()
            yield client
        finally:
            await client.close()


async def test_markets_and_ohlcv(ex: Any) -> None:
    market = ex.market(BTC)
    assert market["id"] == "BTCUSDT" and market["limits"]["amount"]["min"] == 0.001
    assert market["precision"]["price"] == 0.1  # from PRICE_FILTER tickSize
    candles = await ex.fetch_ohlcv(BTC, "1m", limit=1500)
    assert len(candles) == 1000  # ccxt caps Binance klines requests at 1000
    since = candles[10][0] + 1  # unaligned: Binance returns bars opening at or after it
    later = await ex.fetch_ohlcv(BTC, "1m", since=since, limit=5)
    assert [c[0] for c in later] == [c[0] for c in candles[11:16]]
    assert later[0][1:5] == candles[11][1:5]


async def test_orders_positions_balance(ex: Any) -> None:
    mark = Decimal((await ex.fapiPublicGetTickerPrice({"symbol": "BTCUSDT"}))["price"])
    limit = await ex.create_order(BTC, "limit", "buy", 0.01, float(on_tick(mark * Decimal("0.95"), "0.10")))
    assert limit["status"] == "open"
    assert (await ex.fetch_order(limit["id"], BTC))["status"] == "open"
    assert [o["id"] for o in await ex.fetch_open_orders(BTC)] == [limit["id"]]
    assert (await ex.cancel_order(limit["id"], BTC))["status"] == "canceled"
    market = await ex.create_order(BTC, "market", "buy", 0.02)
    assert market["status"] == "closed" and market["filled"] == 0.02 and market["average"] > 0
    positions = await ex.fetch_positions([BTC])
    assert positions[0]["side"] == "long" and positions[0]["contracts"] == 0.02
    balance = await ex.fetch_balance()
    assert 0 < balance["USDT"]["used"] < balance["USDT"]["total"] < 10_000
    stop = await ex.create_order(
        BTC,
        "market",
        "sell",
        0.02,
        params={"stopLossPrice": float(on_tick(mark * Decimal("0.9"), "0.10")), "reduceOnly": True},
    )
    assert stop["status"] == "open" and stop["triggerPrice"] > 0
    await ex.cancel_order(stop["id"], BTC, params={"trigger": True})
    closed = await ex.create_order(BTC, "market", "sell", 0.02, params={"reduceOnly": True})
    assert closed["status"] == "closed"
    assert await ex.fetch_positions([BTC]) == []
    assert len(await ex.fetch_my_trades(BTC)) == 2


async def test_errors_map_to_ccxt_classes(ex: Any) -> None:
    raw = ex.fapiPrivatePostOrder
    with pytest.raises(ccxt.ExchangeError, match="-4120"):
        await raw(
            {
                "symbol": "BTCUSDT",
                "side": "SELL",
                "type": "STOP_MARKET",
                "stopPrice": "1000",
                "closePosition": "true",
            }
        )
    with pytest.raises(ccxt.ExchangeError, match="-2022"):
        await ex.create_order(BTC, "market", "sell", 0.01, params={"reduceOnly": True})
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await ex.fetch_order("123", BTC)
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        await ex.cancel_order("123", BTC)
    with pytest.raises(ccxt.BadSymbol):
        await ex.fapiPublicGetKlines({"symbol": "NOPEUSDT", "interval": "1m"})
    with pytest.raises(ccxt.ExchangeError, match="-4164"):
        await raw({"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"})
    ex.secret = "wrong"
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        await ex.fetch_balance()
