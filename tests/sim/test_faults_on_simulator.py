"""Faults on the full simulator: what the exchange did versus what the client was told."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from aegis.sim.admin import SimAdmin, SimAdminError
from aegis.sim.config import DEMO_API_KEY, SimConfig
from aegis.sim.server import SimServer
from tests.sim.rest_helpers import Raw


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(speed=1.0)) as s:
        yield s


@pytest.fixture
async def admin(server: SimServer) -> AsyncIterator[SimAdmin]:
    async with SimAdmin(server.rest_url) as a:
        yield a


async def _recv(ws: aiohttp.ClientWebSocketResponse, wait: float = 5) -> Any:
    msg = await ws.receive(timeout=wait)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def _position(raw: Raw) -> Decimal:
    _, rows, _ = await raw.signed("GET", "/fapi/v3/positionRisk", symbol="BTCUSDT")
    return sum((Decimal(r["positionAmt"]) for r in rows), Decimal(0))


async def test_out_of_band_trade_with_and_without_events(server: SimServer, raw: Raw, admin: SimAdmin) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": DEMO_API_KEY}) as r:
            key = (await r.json())["listenKey"]
        async with session.ws_connect(f"{server.ws_url}/private/ws?listenKey={key}") as ws:
            silent = await admin.trade(DEMO_API_KEY, "BTCUSDT", "BUY", "0.002", events=False)
            assert silent["clientOrderId"].startswith("android_") and silent["status"] == "FILLED"
            assert await _position(raw) == Decimal("0.002"), "the exchange has the position"
            loud = await admin.trade(DEMO_API_KEY, "BTCUSDT", "BUY", "0.003")
            first = await _recv(ws)  # nothing from the silent trade came before this
            assert first["e"] == "TRADE_LITE" and first["c"] == loud["clientOrderId"]
            assert [(await _recv(ws))["e"] for _ in range(3)] == ["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE"]
            assert await _position(raw) == Decimal("0.005")
    with pytest.raises(SimAdminError) as err:
        await admin.trade("nobody", "BTCUSDT", "BUY", "0.002")
    assert err.value.status == 401


async def test_unknown_outcome_order_exists_although_the_client_saw_503(raw: Raw, admin: SimAdmin) -> None:
    fid = await admin.inject("unknown_outcome", path="/fapi/v1/order", method="POST", count=1, mode="503")
    status, body, _ = await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.002", newClientOrderId="probe-1")
    assert (status, body["code"]) == (503, -1000)
    status, order, _ = await raw.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="probe-1")
    assert status == 200 and order["status"] == "FILLED"
    rows = await admin.faults()
    assert rows[-1]["id"] == fid and rows[-1]["status"] == "done" and rows[-1]["hits"] == 1


async def test_fail_requests_does_not_place_the_order(raw: Raw, admin: SimAdmin) -> None:
    await admin.inject("fail_requests", path="/fapi/v1/order", method="POST", count=1)
    status, body, _ = await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.002", newClientOrderId="probe-2")
    assert (status, body["code"]) == (503, -1008)
    status, body, _ = await raw.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="probe-2")
    assert (status, body["code"]) == (400, -2013)


async def test_pause_market_skips_closes_that_rest_klines_still_has(server: SimServer, raw: Raw, admin: SimAdmin) -> None:
    await server.set_clock(speed=600.0)  # a candle every 0.1 s of wall time
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{server.ws_url}/market/ws/btcusdt@kline_1m") as ws:
        while not (ev := await _recv(ws))["k"]["x"]:
            pass
        before = ev["k"]["t"]
        await admin.inject("pause_market", candles=3, symbols=["BTCUSDT"])
        after = before
        while after == before or not ev["k"]["x"]:
            ev = await _recv(ws)
            after = ev["k"]["t"]
            assert after == before or after >= before + 4 * 60_000 or not ev["k"]["x"], "paused closes leaked"
    assert after >= before + 4 * 60_000
    _, rows, _ = await raw.public("/fapi/v1/klines", symbol="BTCUSDT", interval="1m", startTime=before, limit=5)
    assert [r[0] for r in rows[:4]] == [before + i * 60_000 for i in range(4)], "the exchange closed them all"
    assert (await admin.faults())[-1]["status"] == "done"


async def test_rate_limit_ends_early_when_cleared(raw: Raw, admin: SimAdmin) -> None:
    fid = await admin.inject("rate_limit", seconds=3600, status=418)
    status, body, headers = await raw.public("/fapi/v1/time")
    assert status == 418 and "banned until" in body["msg"] and int(headers["Retry-After"]) > 3500
    assert (await admin.clear_fault(fid))["status"] == "cleared"
    assert (await raw.public("/fapi/v1/time"))[0] == 200
    with pytest.raises(SimAdminError) as err:
        await admin.clear_fault(999)
    assert err.value.status == 404


def test_stream_and_fault_settings_come_from_sim_config_extra() -> None:
    from aegis.sim.faults import FAULT_BOOK
    from aegis.sim.listenkeys import LISTEN_KEYS
    from aegis.sim.server import build_app
    from aegis.sim.simulator import Simulator
    from aegis.sim.streams import MARKET_HUB

    extra = {"ws_queue_max": "7", "ws_pong_timeout_floor_s": "9.5", "fault_hold_s": "3"}
    app = build_app(Simulator(SimConfig(extra=extra)))
    assert app[MARKET_HUB].limits.queue_max == 7 and app[LISTEN_KEYS].limits.pong_timeout_floor_s == 9.5
    assert app[FAULT_BOOK].default_hold_s == 3.0
