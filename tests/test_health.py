"""/health names every reason a careful operator would want paged for; /health/live only says the loop turns.

Each test provokes one condition through the simulator (or, for event-loop lag, by blocking the
loop) and reads /health as an operator would: 503 with a reason naming the condition, and 200
again once it is gone.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.harness import DEMO_API_KEY, until
from tests.metrics_scrape import scrape
from tests.rigs import EngineRig, engine_rig


async def _reasons(rig: EngineRig) -> list[str]:
    status, body = await rig.get("/health")
    assert (status == 200) == (body["reasons"] == []), body
    return list(body["reasons"])


async def _until_reason(rig: EngineRig, words: str, within: float, step: float = 5.0) -> list[str]:
    seen: list[str] = []

    async def present() -> bool:
        seen[:] = await _reasons(rig)
        return any(words in r for r in seen)

    await until(present, within, f"/health reason with {words!r} (last: {seen})", step=step)
    return seen


async def test_liveness_is_200_while_the_loop_turns_even_when_health_is_503() -> None:
    async with engine_rig() as rig:
        await rig.admin.inject("rate_limit", seconds=60, status=418)
        await rig.admin.inject("drop_ws", scope="user")  # the reconnect's reconcile pass meets the ban
        await _until_reason(rig, "REST paused", 60, step=1.0)
        assert await rig.get("/health/live") == (200, {"status": "alive"})


async def test_a_host_clock_far_from_the_exchange_is_unhealthy() -> None:
    async with engine_rig() as rig:
        await rig.admin.inject("clock_jump", ms=5_000)  # the exchange's clock is now 5 s ahead of ours
        reasons = await _until_reason(rig, "clock offset", 600)
        assert any("check NTP" in r for r in reasons)
        offset = (await scrape(rig.ops_url)).value("aegis_clock_offset_seconds")
        assert 4.0 < offset < 6.0


async def test_a_reconcile_pass_that_found_the_engine_wrong_is_unhealthy_until_a_clean_one() -> None:
    settings = {"reconcile": {"on_position": "adopt"}}  # adopted, not halted: only the report says so
    async with engine_rig(settings=settings) as rig:
        await rig.admin.trade(DEMO_API_KEY, "BTCUSDT", "BUY", "0.010", events=False)  # the stream never tells
        status, report = await _post(rig, "/reconcile")
        assert status == 200 and not report["clean"]
        reasons = await _reasons(rig)
        assert any("last reconcile pass found" in r and "position" in r for r in reasons), reasons
        assert (await scrape(rig.ops_url)).value("aegis_reconcile_mismatches_total", kind="position") == 1
        status, report = await _post(rig, "/reconcile")  # the engine adopted the truth: now clean
        assert report["clean"]
        assert await _reasons(rig) == []


async def test_a_keepalive_stuck_behind_a_rest_ban_is_unhealthy_before_the_key_dies() -> None:
    # The keepalive fails nothing while REST is banned: it waits. The key still dies 60 min after
    # the last success, so /health must say so well before that.
    settings = {"userstream": {"keepalive_interval_s": 600.0}}
    async with engine_rig(settings=settings) as rig:
        await rig.admin.inject("rate_limit", seconds=1800, status=418)
        await rig.admin.inject("drop_ws", scope="user")  # something asks REST, and meets the ban
        reasons = await _until_reason(rig, "keepalive overdue", 1800)
        assert any("REST paused" in r for r in reasons)
        assert not any("presumably expired" in r for r in reasons)
        await rig.healthy(within=1800)  # the ban ends, the key is kept alive again


@pytest.mark.wallclock
async def test_an_event_loop_blocked_longer_than_its_bound_is_unhealthy() -> None:
    # Real time: on the virtual-time loop a timer is never late. Blocking the loop IS the condition
    # under test (as a slow synchronous call in a strategy would); the blocks repeat until /health
    # has been read right after one, whatever the machine's load.
    settings = {"ops": {"port": 0, "max_loop_lag_s": 0.5}}
    async with engine_rig(settings=settings) as rig:
        deadline = time.monotonic() + 120  # a hang guard, not a measure
        while True:
            time.sleep(2.0)  # noqa: ASYNC251 - blocks the event loop on purpose
            reasons = await _reasons(rig)
            if any("event loop lagged" in r for r in reasons):
                break
            assert time.monotonic() < deadline, reasons
        assert (await scrape(rig.ops_url)).value("aegis_event_loop_lag_max_seconds") > 0.5
        assert await rig.get("/health/live") == (200, {"status": "alive"})


async def _post(rig: EngineRig, path: str) -> tuple[int, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(rig.ops_url + path) as resp:
        return resp.status, await resp.json()

