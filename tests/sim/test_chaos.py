"""Faults at a given exchange time, and a seeded chaos schedule that is the same for the same seed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aegis.sim import chaos
from aegis.sim.admin import SimAdmin
from aegis.sim.admininput import AdminInputError
from aegis.sim.config import DEMO_API_KEY, SimConfig
from aegis.sim.server import SimServer
from tests.sim.rest_helpers import Raw

START = 1_700_000_000_000
HOUR = 3_600_000


def test_same_seed_same_schedule_and_every_kind_is_drawn() -> None:
    one = chaos.schedule(7, START, START + 48 * HOUR, api_key=DEMO_API_KEY)
    assert one == chaos.schedule(7, START, START + 48 * HOUR, api_key=DEMO_API_KEY)
    assert one != chaos.schedule(8, START, START + 48 * HOUR, api_key=DEMO_API_KEY)
    times = [e["at_ms"] for e in one]
    assert times == sorted(times) and START <= times[0] and times[-1] < START + 48 * HOUR
    kinds = {e.get("kind", "trade") for e in one}
    assert kinds >= {
        "drop_ws", "freeze_ws", "pause_market", "expire_listen_key", "fail_requests", "rate_limit",
        "order_lag", "unknown_outcome", "clock_jump", "latency", "trade",
    }
    assert 60 <= len(one) <= 160, "about 2 events an hour"
    lagged = [e for e in one if e.get("kind") == "order_lag"]
    assert all(any(u.get("kind") == "unknown_outcome" and u["at_ms"] == e["at_ms"] for u in one) for e in lagged)
    no_trades = chaos.schedule(7, START, START + 48 * HOUR)
    assert all("trade" not in e for e in no_trades), "no api_key: no out-of-band trades"
    only_bans = chaos.schedule(1, START, START + 24 * HOUR, kinds=("ban_418",), rate=1.0)
    assert {(e["kind"], e["status"]) for e in only_bans} == {("rate_limit", 418)}
    with pytest.raises(ValueError):
        chaos.schedule(1, START, START + HOUR, kinds=("meteor",))


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(start_ms=START, kline_update_ms=60_000)) as s:
        yield s


async def test_a_fault_with_at_ms_waits_for_its_exchange_time(server: SimServer, raw: Raw) -> None:
    async with SimAdmin(server.rest_url) as admin:
        later = await admin.inject("rate_limit", status=429, seconds=30, at_ms=START + 60_000)
        never = await admin.inject("drop_ws", at_ms=START + 90_000)
        rows = {f["id"]: f for f in await admin.faults()}
        assert rows[later]["status"] == "scheduled" and rows[later]["effective_ms"] == START + 60_000
        assert (await raw.public("/fapi/v1/time"))[0] == 200
        await admin.clear_fault(never)
        await asyncio.sleep(61)
        assert (await raw.public("/fapi/v1/time"))[0] == 429
        rows = {f["id"]: f for f in await admin.faults()}
        assert rows[later]["status"] == "active" and rows[later]["effective_ms"] >= START + 60_000
        await asyncio.sleep(60)
        assert (await raw.public("/fapi/v1/time"))[0] == 200
        assert {f["id"]: f for f in await admin.faults()}[never]["hits"] == 0, "cleared before its time"


async def test_an_out_of_band_trade_with_at_ms_happens_then(server: SimServer) -> None:
    async with SimAdmin(server.rest_url) as admin:
        answer = await admin._call(
            "POST", "/_sim/trade",
            {"api_key": DEMO_API_KEY, "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.002", "at_ms": START + 120_000},
        )
        assert answer == {"scheduled": True, "at_ms": START + 120_000}
        assert (await server.state())["accounts"][DEMO_API_KEY]["positions"] == []
        await asyncio.sleep(121)
        assert (await server.state())["accounts"][DEMO_API_KEY]["positions"][0]["positionAmt"] == "0.002"


async def _run(entries: list[dict[str, Any]]) -> tuple[list[Any], list[Any], int]:
    config = SimConfig(start_ms=START, kline_update_ms=60_000, fault_schedule=tuple(entries))
    async with SimServer(config) as server, SimAdmin(server.rest_url) as admin:
        assert all(f["status"] == "scheduled" for f in await admin.faults())
        await asyncio.sleep(6 * 3600)
        rows = await admin.faults()
        positions = (await server.state())["accounts"][DEMO_API_KEY]["positions"]
        orders = server.sim.exchange.account(DEMO_API_KEY).orders.values()
        app_trades = sum(o.client_order_id.startswith("android_") for o in orders)
    return rows, positions, app_trades


async def test_a_seeded_schedule_in_the_config_replays_identically() -> None:
    entries = chaos.schedule(7, START, START + 6 * HOUR, rate=3.0, api_key=DEMO_API_KEY)
    first, positions, app_trades = await _run(entries)
    assert len(first) == sum("kind" in e for e in entries)
    assert all(f["status"] != "scheduled" for f in first), "every fault took effect"
    for row, entry in zip(first, (e for e in entries if "kind" in e), strict=True):
        assert row["kind"] == entry["kind"] and row["effective_ms"] >= entry["at_ms"]
    assert app_trades == sum("trade" in e for e in entries) > 0, "every scheduled trade was placed"
    assert await _run(entries) == (first, positions, app_trades), "same schedule, same exchange history"


async def test_a_bad_schedule_entry_stops_the_start() -> None:
    with pytest.raises(AdminInputError):
        async with SimServer(SimConfig(start_ms=START, fault_schedule=({"kind": "rate_limit", "status": 500, "at_ms": START},))):
            pass
