"""The listenKey keeper: keepalives on time, retries, and a dead key is always reported."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from aegis.account.listenkey import ListenKeyKeeper
from aegis.binance.errors import ListenKeyNotFound, Retryable
from aegis.clock import Clock
from aegis.redact import key_prefix

SPEED = 7_200.0  # one hour of engine time in 0.5 s of wall time
HOUR = 3600.0


class FakeApi:
    """Binance's listenKey endpoints with scripted failures."""

    def __init__(self) -> None:
        self.created = 0
        self.keepalive_times: list[float] = []
        self.closed = 0
        self.fail_next: list[Exception] = []
        self.clock: Clock | None = None

    async def create_listen_key(self) -> str:
        self.created += 1
        return f"{'k' * 60}{self.created:04d}"

    async def keepalive_listen_key(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)
        assert self.clock is not None
        self.keepalive_times.append(self.clock.monotonic())

    async def close_listen_key(self) -> None:
        self.closed += 1


@contextlib.asynccontextmanager
async def running(keeper: ListenKeyKeeper, gone: list[str]) -> AsyncIterator[None]:
    task = asyncio.create_task(keeper.run(gone.append))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def sleep_clock(clock: Clock, seconds: float) -> None:
    await asyncio.sleep(clock.wall_seconds(seconds))


@pytest.fixture
def clock() -> Clock:
    return Clock(speed=SPEED)


@pytest.fixture
def api(clock: Clock) -> FakeApi:
    fake = FakeApi()
    fake.clock = clock
    return fake


async def test_keepalive_every_interval_keeps_the_key(clock: Clock, api: FakeApi) -> None:
    keeper = ListenKeyKeeper(api, clock, keepalive_interval_s=1800)
    await keeper.acquire()
    gone: list[str] = []
    async with running(keeper, gone):
        await sleep_clock(clock, 2.6 * HOUR)
    assert gone == []
    assert 4 <= len(api.keepalive_times) <= 5  # at 0.5, 1.0, 1.5, 2.0, 2.5 h
    gaps = [b - a for a, b in zip(api.keepalive_times, api.keepalive_times[1:], strict=False)]
    assert all(1750 < gap < 2300 for gap in gaps), gaps  # 1 ms of wall jitter is 7 s here
    assert not keeper.presumed_expired()


async def test_keepalive_answered_minus_1125_reports_the_key_gone_once(clock: Clock, api: FakeApi) -> None:
    keeper = ListenKeyKeeper(api, clock, keepalive_interval_s=600)
    await keeper.acquire()
    api.fail_next = [ListenKeyNotFound("This listenKey does not exist.", code=-1125, http_status=400)]
    gone: list[str] = []
    async with running(keeper, gone):
        await sleep_clock(clock, 0.5 * HOUR)
    assert len(gone) == 1 and "-1125" in gone[0]
    assert keeper.key is None


async def test_a_transient_keepalive_failure_is_retried_long_before_expiry(
    clock: Clock, api: FakeApi
) -> None:
    keeper = ListenKeyKeeper(api, clock, keepalive_interval_s=1800, retry_initial_s=30)
    await keeper.acquire()
    t0 = clock.monotonic()
    api.fail_next = [Retryable("Service Unavailable.", code=-1008, http_status=503)]
    gone: list[str] = []
    async with running(keeper, gone):
        await sleep_clock(clock, 0.5 * HOUR + 600)
        assert keeper.keepalive_failures == 0 and keeper.keepalives == 1
        # The retry came within minutes of the failure at 30 min, not another 30 min later.
        assert api.keepalive_times[0] - t0 < 0.5 * HOUR + 400
    assert gone == []


async def test_without_keepalives_the_key_is_declared_dead_after_60_minutes(
    clock: Clock, api: FakeApi
) -> None:
    keeper = ListenKeyKeeper(api, clock, keepalive_interval_s=2 * HOUR)
    start = clock.monotonic()
    await keeper.acquire()
    gone: list[str] = []
    async with running(keeper, gone):
        await sleep_clock(clock, 0.9 * HOUR)
        assert gone == []
        await sleep_clock(clock, 0.3 * HOUR)
    assert len(gone) == 1 and "no successful keepalive" in gone[0]
    assert api.keepalive_times == []
    assert clock.monotonic() - start >= HOUR


async def test_a_failing_keepalive_ends_in_a_dead_key_not_in_silence(clock: Clock, api: FakeApi) -> None:
    keeper = ListenKeyKeeper(api, clock, keepalive_interval_s=1800, retry_initial_s=60, retry_max_s=300)
    await keeper.acquire()
    api.fail_next = [Retryable("Service Unavailable.", code=-1008, http_status=503) for _ in range(100)]
    gone: list[str] = []
    async with running(keeper, gone):
        await sleep_clock(clock, 1.2 * HOUR)
    assert len(gone) == 1 and "no successful keepalive" in gone[0]


async def test_close_deletes_the_key_once(clock: Clock, api: FakeApi) -> None:
    keeper = ListenKeyKeeper(api, clock)
    await keeper.close()
    assert api.closed == 0
    await keeper.acquire()
    await keeper.close()
    await keeper.close()
    assert api.closed == 1 and keeper.key is None


def test_only_a_prefix_of_a_key_is_shown() -> None:
    key = "A" * 64
    assert key_prefix(key) == "AAAAAA…" and key_prefix(None) == "-"
