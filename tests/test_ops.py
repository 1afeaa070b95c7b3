"""The loopback ops endpoint: health, state snapshot and candles as Binance kline rows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from aegis.ops.server import OpsServer
from aegis.state.store import StateStore
from tests.factories import MINUTE_MS, balance, candle, order, position


@pytest.fixture
async def ops() -> AsyncIterator[tuple[OpsServer, StateStore, list[str]]]:
    state = StateStore()
    problems: list[str] = []
    server = OpsServer(state, problems=[lambda: problems], extra_state=lambda: {"engine": {"profile": "sim"}})
    await server.start()
    yield server, state, problems
    await server.stop()


async def _get(server: OpsServer, path: str) -> tuple[int, object]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.bound_port}{path}") as resp:
            return resp.status, await resp.json()


async def test_health_reports_reasons_with_503(ops: tuple[OpsServer, StateStore, list[str]]) -> None:
    server, _, problems = ops
    assert await _get(server, "/health") == (200, {"status": "ok", "reasons": []})
    problems.append("critical task market is not running")
    assert await _get(server, "/health") == (
        503,
        {"status": "unhealthy", "reasons": ["critical task market is not running"]},
    )


async def test_state_serialises_decimals_as_strings(ops: tuple[OpsServer, StateStore, list[str]]) -> None:
    server, state, _ = ops
    await state.apply_account(
        balances=[balance("USDT", "1000.50000000")], positions=[position("BTCUSDT", "-0.010")], at_ms=1
    )
    await state.apply_order(order("abc", order_id=8389765739703625592))
    await state.add_candles("BTCUSDT", [candle("BTCUSDT", 0), candle("BTCUSDT", MINUTE_MS)])
    await state.set_stream_status("user", {"connected": True, "reconnects": 2})
    status, body = await _get(server, "/state")
    assert status == 200
    assert isinstance(body, dict)
    assert body["balances"][0]["wallet_balance"] == "1000.50000000"
    assert body["positions"][0]["amount"] == "-0.010"
    assert body["open_orders"][0]["order_id"] == 8389765739703625592  # 19 digits, exact in JSON
    assert body["candles"]["BTCUSDT"] == {"count": 2, "first_open_ms": 0, "last_open_ms": MINUTE_MS, "holes": []}
    assert body["streams"]["user"] == {"connected": True, "reconnects": 2}
    assert body["engine"] == {"profile": "sim"}


async def test_candles_are_binance_kline_rows(ops: tuple[OpsServer, StateStore, list[str]]) -> None:
    server, state, _ = ops
    await state.add_candles("ETHUSDT", [candle("ETHUSDT", 0, "2500.10")])
    status, rows = await _get(server, "/state/candles/ethusdt")
    assert status == 200
    assert rows == [[0, "2500.10", "2500.10", "2500.10", "2500.10", "1.000", MINUTE_MS - 1, "2500.10", 1, "0.500", "1250.05", "0"]]
    assert (await _get(server, "/state/candles/NOPEUSDT"))[0] == 404


async def test_binds_loopback_only(ops: tuple[OpsServer, StateStore, list[str]]) -> None:
    server, _, _ = ops
    assert server.bound_host == "127.0.0.1"
    assert server.bound_port and server.bound_port > 0
