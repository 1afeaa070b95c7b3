"""What arrives on the simulator's sockets has the keys, value types and arrival order of the
recorded real Binance WebSocket payloads (tests/fixtures/binance/ws_*.json)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from aegis.sim.config import DEMO_API_KEY, SimConfig
from aegis.sim.server import SimServer
from tests.fixtures import binance_obj
from tests.sim.rest_helpers import Raw, on_tick
from tests.sim.shapes import shape

SEQ = ("1_TRADE_LITE", "2_ORDER_TRADE_UPDATE_NEW", "3_ACCOUNT_UPDATE", "4_ORDER_TRADE_UPDATE_FILLED")


def load(name: str) -> Any:
    return binance_obj(name)


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    # A fixed start replays the same candles every run (signed requests still use wall time).
    async with SimServer(SimConfig(speed=1.0, start_ms=1_795_000_000_000)) as s:
        yield s


async def _user_ws(server: SimServer, session: aiohttp.ClientSession) -> tuple[str, aiohttp.ClientWebSocketResponse]:
    async with session.post(f"{server.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": DEMO_API_KEY}) as r:
        key = (await r.json())["listenKey"]
    return key, await session.ws_connect(f"{server.ws_url}/private/ws?listenKey={key}")


async def _recv(ws: aiohttp.ClientWebSocketResponse) -> Any:
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def _mark(raw: Raw) -> Decimal:
    _, body, _ = await raw.public("/fapi/v1/ticker/price", symbol="BTCUSDT")
    return Decimal(body["price"])


async def test_kline_stream_matches_recording_and_closes_like_rest(server: SimServer, raw: Raw) -> None:
    await server.set_clock(speed=600.0)  # one candle every 0.1 s of wall time
    real = load("ws_kline_combined.json")
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{server.ws_url}/market/stream?streams=btcusdt@kline_1m") as ws:
        first = await _recv(ws)
        assert shape(first) == shape(real) and first["stream"] == "btcusdt@kline_1m"
        while True:
            msg = await _recv(ws)
            if msg["data"]["k"]["x"]:
                break
        k = msg["data"]["k"]
        assert k["T"] == k["t"] + 59_999 and msg["data"]["E"] >= k["T"]
    _, rows, _ = await raw.public("/fapi/v1/klines", symbol="BTCUSDT", interval="1m", startTime=k["t"], limit=1)
    assert rows[0][:6] == [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"]], "the closed candle is the REST candle"


async def test_user_events_arrive_in_binance_order_with_recorded_shapes(server: SimServer, raw: Raw) -> None:
    async with aiohttp.ClientSession() as session:
        _, ws = await _user_ws(server, session)
        mark = await _mark(raw)
        await raw.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.002", price=on_tick(mark * Decimal("1.01"), "0.10"))
        opening = [await _recv(ws) for _ in SEQ]
        for ours, name in zip(opening, SEQ, strict=True):
            real = load(f"ws_seq_open_{name}.json")
            assert (ours["e"], ours.get("o", {}).get("x")) == (real["e"], real.get("o", {}).get("x"))
            assert shape(ours) == shape(real), name
        await raw.order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.002", reduceOnly="true")
        closing = [await _recv(ws) for _ in SEQ]
        for ours, name in zip(closing, SEQ, strict=True):
            assert shape(ours) == shape(load(f"ws_seq_close_{name}.json")), name
        assert closing[1]["o"]["i"] == closing[0]["i"] and len({e["E"] for e in closing}) == 1
        _, placed, _ = await raw.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.010", price=on_tick(mark * Decimal("0.9"), "0.10"))
        await raw.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"])
        new, canceled = await _recv(ws), await _recv(ws)
        assert (new["o"]["x"], canceled["o"]["x"]) == ("NEW", "CANCELED")
        assert shape(canceled) == shape(load("ws_ORDER_TRADE_UPDATE_canceled_hedge.json"))
        big = load("ws_TRADE_LITE_19digit_orderId.json")
        assert shape(opening[0]) == shape(big)
        await ws.close()


async def test_algo_update_and_listen_key_expired_shapes(server: SimServer, raw: Raw) -> None:
    sim = server.sim
    now = sim.clock.now_ms()
    highs = [sim.market.candle("BTCUSDT", now + i * 60_000).high for i in range(1, 40)]
    trigger = on_tick(max(highs) - Decimal("0.1"), "0.10")  # the path reaches it within 40 minutes
    async with aiohttp.ClientSession() as session:
        key, ws = await _user_ws(server, session)
        status, body, _ = await raw.signed("POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT", side="BUY", type="STOP_MARKET", triggerPrice=trigger, quantity="0.010")
        assert status == 200, body
        new = await _recv(ws)
        assert new["e"] == "ALGO_UPDATE" and new["o"]["X"] == "NEW"
        assert set(shape(new["o"])) >= set(shape(load("ws_ALGO_UPDATE_triggered.json")["data"]["o"]))
        async with session.post(f"{server.rest_url}/_sim/faults", json={"kind": "clock_jump", "ms": 45 * 60_000}) as r:
            assert r.status == 200
        events = []
        while not any(e["e"] == "ALGO_UPDATE" and e["o"]["X"] == "TRIGGERED" for e in events):
            events.append(await _recv(ws))
        assert shape(events[-1]) == shape(load("ws_ALGO_UPDATE_triggered.json")["data"])
        async with session.post(f"{server.rest_url}/_sim/faults", json={"kind": "expire_listen_key"}) as r:
            assert r.status == 200
        while (last := await _recv(ws))["e"] != "listenKeyExpired":
            pass
        assert shape(last) == shape(load("ws_listenKeyExpired.docs.json")) and last["listenKey"] == key
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.CLOSE
        await asyncio.sleep(0)


async def test_listen_key_rest_matches_recording_and_counts_weight(server: SimServer) -> None:
    async with aiohttp.ClientSession() as session:
        url, headers = f"{server.rest_url}/fapi/v1/listenKey", {"X-MBX-APIKEY": DEMO_API_KEY}
        async with session.post(url, headers=headers) as r:
            assert shape(await r.json()) == shape(load("fapi_v1_listenKey.json"))
            first = int(r.headers["X-MBX-USED-WEIGHT-1M"])
        async with session.put(url, headers=headers) as r:
            assert r.status == 200 and int(r.headers["X-MBX-USED-WEIGHT-1M"]) == first + 1
