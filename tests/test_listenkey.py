"""The listenKey keeper: keepalives on time, retries, and a dead key is always reported.

On virtual time at speed 1 an ``asyncio.sleep(s)`` is ``s`` exchange seconds with every timer
firing as it would, so the keepalive times below are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from aegis.account.listenkey import ListenKeyKeeper
from aegis.binance.errors import ListenKeyNotFound, Retryable
from aegis.clock import Clock
from aegis.redact import key_prefix

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
    """Let ``seconds`` of the keeper's clock pass."""
    await asyncio.sleep(clock.wall_seconds(seconds))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(clock: Clock) -> FakeApi:
    fake = FakeApi()
    fake.clock = clock
    return fake


async def test_keepalive_every_interval_keeps_the_key(clock: Clock, api: FakeApi) -> None:
    keeper = ListenKeyKeeper(api, clock, keepalive_interval_s=1800)
    await keeper.acquire()
    t0 = clock.monotonic()
    gone: list[str] = []
    async with running(keeper, gone):
        await sleep_clock(clock, 2.6 * HOUR)
    assert gone == []
    since = [t - t0 for t in api.keepalive_times]
    assert since == pytest.approx([0.5 * HOUR, 1.0 * HOUR, 1.5 * HOUR, 2.0 * HOUR, 2.5 * HOUR], abs=1e-6)
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
