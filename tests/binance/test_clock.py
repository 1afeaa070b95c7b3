"""ServerClock: offset measured at the round trip's midpoint; one measurement for many callers.

On virtual time the "network" legs below are exact loop seconds, so the midpoint arithmetic is too.
"""

from __future__ import annotations

import asyncio

import pytest

from aegis.binance.clock import ServerClock
from aegis.clock import Clock
from tests.harness import until


async def test_offset_is_taken_at_the_midpoint_of_the_round_trip() -> None:
    clock = Clock(speed=1.0, start_ms=1_000_000)
    server = ServerClock(clock)

    async def fetch() -> int:
        await asyncio.sleep(0.02)  # request leg
        stamp = clock.now_ms() + 5_000  # the exchange is 5 s ahead
        await asyncio.sleep(0.06)  # a slower response leg
        return stamp

    server.bind(fetch)
    offset = await server.sync()
    # midpoint correction: the error is half the asymmetry (20 ms), never the whole round trip (80 ms)
    assert 4_979 <= offset <= 4_981
    assert server.round_trip_ms is not None and 79 <= server.round_trip_ms <= 81
    assert abs(server.now_ms() - (clock.now_ms() + offset)) <= 1


async def test_concurrent_resyncs_share_one_request() -> None:
    clock = Clock()
    server = ServerClock(clock)
    calls = 0

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return clock.now_ms() - 2_000

    server.bind(fetch)
    offsets = await asyncio.gather(*(server.sync() for _ in range(10)))
    assert calls == 1 and len(set(offsets)) == 1


async def test_refresh_happens_when_the_last_sync_is_older_than_the_interval() -> None:
    clock = Clock()
    server = ServerClock(clock, refresh_interval_s=60)
    calls = 0

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        return clock.now_ms()

    server.bind(fetch)
    await server.ensure_synced()
    await server.ensure_synced()
    assert calls == 1
    await clock.sleep(59)
    await server.ensure_synced()
    assert calls == 1  # still fresh
    await clock.sleep(2)
    await server.ensure_synced()
    assert calls == 2


async def test_background_refresh_survives_failures() -> None:
    clock = Clock()
    server = ServerClock(clock, refresh_interval_s=5)
    results: list[int | Exception] = [RuntimeError("down"), 42_000, 43_000, 44_000]

    async def fetch() -> int:
        item = results.pop(0) if len(results) > 1 else results[0]
        if isinstance(item, Exception):
            raise item
        return item + clock.now_ms()

    server.bind(fetch)
    server.start()
    await until(lambda: server.sync_count >= 2, 120.0, "two syncs after a failure")
    await server.stop()
    assert server.sync_count >= 2 and server.offset_ms >= 42_000


def test_unbound_clock_says_so() -> None:
    with pytest.raises(RuntimeError):
        asyncio.run(ServerClock(Clock()).sync())
