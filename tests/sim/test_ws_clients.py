"""python-binance and ccxt.pro, pointed at the simulator by base URL only, stream klines and orders.

Clock speed 1: both clients sign with wall time. Intermediate kline updates every 250 ms keep
these tests short.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aegis.sim.config import DEMO_API_KEY, DEMO_API_SECRET, SimConfig
from aegis.sim.listenkeys import LISTEN_KEYS
from aegis.sim.server import SimServer
from tests.sim.rest_helpers import ccxt_client, python_binance_client


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(speed=1.0, kline_update_ms=250)) as s:
        yield s


async def _user_stream_connected(server: SimServer) -> None:
    """Wait until the client's user-stream socket is up, so no event is published before it."""
    assert server._runner is not None
    registry = server._runner.app[LISTEN_KEYS]
    for _ in range(200):
        if registry.connections():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the client never connected its user stream")


def _socket_manager(server: SimServer, client: Any, **kwargs: Any) -> Any:
    from binance import BinanceSocketManager

    class SimBSM(BinanceSocketManager):  # type: ignore[misc]
        FSTREAM_URL = f"{server.ws_url}/"

    return SimBSM(client, **kwargs)


async def test_python_binance_multiplex_socket_receives_klines(server: SimServer) -> None:
    client = await python_binance_client(server)
    try:
        bsm = _socket_manager(server, client)
        async with bsm.futures_multiplex_socket(["btcusdt@kline_1m", "ethusdt@kline_1m"]) as stream:
            seen: set[str] = set()
            while seen != {"btcusdt@kline_1m", "ethusdt@kline_1m"}:
                msg = await asyncio.wait_for(stream.recv(), 5)
                assert msg["data"]["e"] == "kline" and msg["data"]["k"]["i"] == "1m"
                seen.add(msg["stream"])
    finally:
        await client.close_connection()


async def test_python_binance_continuous_kline_socket(server: SimServer) -> None:
    client = await python_binance_client(server)
    try:
        bsm = _socket_manager(server, client)
        async with bsm.kline_futures_socket("BTCUSDT") as stream:
            msg = await asyncio.wait_for(stream.recv(), 5)
            assert msg["e"] == "continuous_kline" and msg["ps"] == "BTCUSDT" and msg["ct"] == "PERPETUAL"
    finally:
        await client.close_connection()


async def test_python_binance_user_socket_sees_its_orders(server: SimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from binance.ws.reconnecting_websocket import ReconnectingWebsocket

    # Its read loop notices an exit only after a 10 s silent recv(); shorten it for the test.
    monkeypatch.setattr(ReconnectingWebsocket, "TIMEOUT", 0.5)
    client = await python_binance_client(server)
    try:
        bsm = _socket_manager(server, client)
        async with bsm.futures_user_socket() as stream:
            await _user_stream_connected(server)
            placed = await client.futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.002")
            kinds = []
            while len(kinds) < 4:
                msg = await asyncio.wait_for(stream.recv(), 5)
                kinds.append((msg["e"], msg.get("o", {}).get("x")))
                if msg["e"] == "ORDER_TRADE_UPDATE":
                    assert msg["o"]["i"] == placed["orderId"]
            assert kinds == [
                ("TRADE_LITE", None),
                ("ORDER_TRADE_UPDATE", "NEW"),
                ("ACCOUNT_UPDATE", None),
                ("ORDER_TRADE_UPDATE", "TRADE"),
            ]
    finally:
        await client.close_connection()


def _ccxt_pro(server: SimServer) -> Any:
    import ccxt.pro as ccxtpro

    rest = ccxt_client(server)
    ex = ccxtpro.binanceusdm(
        {"apiKey": DEMO_API_KEY, "secret": DEMO_API_SECRET, "options": {"fetchCurrencies": False, "fetchMargins": False}}
    )
    ex.urls["api"].update({k: v for k, v in rest.urls["api"].items() if k.startswith("fapi")})
    ex.urls["api"]["ws"]["linear"] = f"{server.ws_url}/ws"
    return rest, ex


async def test_ccxt_pro_watch_ohlcv(server: SimServer) -> None:
    rest, ex = _ccxt_pro(server)
    try:
        candles = await asyncio.wait_for(ex.watch_ohlcv("BTC/USDT:USDT", "1m"), 10)
        assert candles and len(candles[-1]) == 6 and candles[-1][4] > 0
    finally:
        await ex.close()
        await rest.close()


async def test_ccxt_pro_watch_orders_sees_the_order_it_placed(server: SimServer) -> None:
    rest, ex = _ccxt_pro(server)
    try:
        await ex.load_markets()
        watcher = asyncio.create_task(ex.watch_orders("BTC/USDT:USDT"))
        await _user_stream_connected(server)
        placed = await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.002)
        orders = await asyncio.wait_for(watcher, 10)
        assert orders[-1]["id"] == placed["id"] and orders[-1]["symbol"] == "BTC/USDT:USDT"
    finally:
        await ex.close()
        await rest.close()


async def test_python_binance_keepalive_keeps_its_key_past_60_simulated_minutes(
    server: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from binance.ws.reconnecting_websocket import ReconnectingWebsocket

    monkeypatch.setattr(ReconnectingWebsocket, "TIMEOUT", 0.5)
    client = await python_binance_client(server)
    try:
        # python-binance re-POSTs every user_timeout; the same key back means "PUT it", not "reconnect"
        bsm = _socket_manager(server, client, user_timeout=0.3)
        async with bsm.futures_user_socket() as stream:
            await _user_stream_connected(server)
            assert server._runner is not None
            registry = server._runner.app[LISTEN_KEYS]
            key = registry.active(DEMO_API_KEY)
            assert key is not None
            await server.set_clock(jump_ms=50 * 60_000)
            deadline = server.sim.clock.now_ms() + 50 * 60_000
            for _ in range(100):  # the client's next keepalive
                if key.expires_ms >= deadline:
                    break
                await asyncio.sleep(0.05)
            assert key.expires_ms >= deadline, "python-binance never kept its key alive"
            await server.set_clock(jump_ms=15 * 60_000)  # 65 minutes after creation
            assert registry.active(DEMO_API_KEY) is key and len(key.conns) == 1
            await client.futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.002")
            assert (await asyncio.wait_for(stream.recv(), 5))["e"] == "TRADE_LITE"
    finally:
        await client.close_connection()
