"""userTrades by startTime and by orderId, and income by startTime, answer what filtering all of
the account's rows answers, also once the clock went back and rows are no longer in time order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from aegis.sim.config import SimConfig
from aegis.sim.server import SimServer
from tests.sim.rest_helpers import Raw

START = 1_795_000_010_000


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(start_ms=START)) as s:
        yield s


async def _market(raw: Raw, side: str) -> int:
    status, body, _ = await raw.order(symbol="BTCUSDT", side=side, type="MARKET", quantity="0.010")
    assert status == 200, body
    return int(body["orderId"])


async def _trades(raw: Raw, **kw: Any) -> list[dict[str, Any]]:
    _, body, _ = await raw.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT", **kw)
    assert isinstance(body, list), body
    return body


async def _income(raw: Raw, **kw: Any) -> list[dict[str, Any]]:
    _, body, _ = await raw.signed("GET", "/fapi/v1/income", limit="1000", **kw)
    assert isinstance(body, list), body
    return body


async def _agree(raw: Raw, order_ids: list[int]) -> None:
    everything = await _trades(raw, limit="1000")
    times = sorted({t["time"] for t in everything})
    for start in [times[0] - 1, *times, times[-1] + 1]:
        expected = [t for t in everything if t["time"] >= start]
        assert await _trades(raw, startTime=str(start), limit="1000") == expected
    for oid in order_ids:
        assert await _trades(raw, orderId=str(oid)) == [t for t in everything if t["orderId"] == oid]
    booked = await _income(raw, startTime=str(START - 3_600_000))
    assert booked  # commissions and PnL (rows after the clock's now are not listed)
    for start in sorted({r["time"] for r in booked}):
        assert await _income(raw, startTime=str(start)) == [r for r in booked if r["time"] >= start]


async def test_user_trades_by_start_time_and_order_id_match_a_full_scan(server: SimServer, raw: Raw) -> None:
    ids = [await _market(raw, "BUY")]
    await server.set_clock(jump_ms=120_000)
    ids.append(await _market(raw, "SELL"))
    await server.set_clock(jump_ms=60_000)
    ids.append(await _market(raw, "BUY"))
    await _agree(raw, ids)
    await server.set_clock(jump_ms=-600_000)  # back before the first trade: no longer in time order
    ids.append(await _market(raw, "SELL"))
    await _agree(raw, ids)
    assert len(await _trades(raw)) == 4
