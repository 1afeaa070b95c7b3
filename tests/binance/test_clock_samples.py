"""ServerClock against a fake /time: one slow round trip among fast ones must not move the offset."""

from __future__ import annotations

import pytest

from aegis.binance.clock import ServerClock, TimeSample
from aegis.clock import Clock

TRUE_OFFSET = 5_000  # the exchange is 5 s ahead


class ManualClock(Clock):
    """Engine time that only the fake exchange advances: no sleeping, exact numbers."""

    def __init__(self, speed: float = 1.0) -> None:
        super().__init__(speed=speed, start_ms=1_000_000)
        self.t = 1_000_000

    def now_ms(self) -> int:
        return self.t

    def monotonic(self) -> float:
        return self.t / 1000


class FakeTime:
    """GET /fapi/v1/time whose legs last what the test says: (request ms, response ms) per call."""

    def __init__(self, clock: ManualClock, offset_ms: int = TRUE_OFFSET) -> None:
        self.clock = clock
        self.offset_ms = offset_ms
        self.legs: list[tuple[int, int]] = []
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        up, down = self.legs.pop(0) if self.legs else (10, 10)
        self.clock.t += up
        stamp = self.clock.t + self.offset_ms
        self.clock.t += down
        return stamp


def make(speed: float = 1.0) -> tuple[ServerClock, FakeTime]:
    clock = ManualClock(speed)
    server = ServerClock(clock)
    fake = FakeTime(clock)
    server.bind(fake)
    return server, fake


async def warm(server: ServerClock, fake: FakeTime, n: int = 4) -> None:
    for _ in range(n):
        await server.sync()
    assert server.offset_ms == TRUE_OFFSET and server.round_trip_ms == 20


async def test_one_slow_sample_among_fast_ones_is_not_used() -> None:
    # at 600x a 200 ms stall in the reply is 120 s: the midpoint alone would be ~60 s off
    server, fake = make(speed=600)
    await warm(server, fake)
    fake.legs = [(10, 120_000)]  # slow, then fast again
    calls = fake.calls
    assert await server.sync() == TRUE_OFFSET
    assert fake.calls - calls == 2 and server.round_trip_ms == 20
    assert server.slow_samples == 1


async def test_only_slow_samples_that_agree_keep_the_precise_offset() -> None:
    server, fake = make()
    await warm(server, fake)
    fake.legs = [(10, 9_000), (4_000, 10), (3_000, 3_000)]  # all slow, all consistent with 5 000
    calls = fake.calls
    assert await server.sync() == TRUE_OFFSET
    assert fake.calls - calls == server.max_samples == 3
    assert server.round_trip_ms == 20  # the offset in use still comes from a 20 ms round trip
    assert server.synced_at == server.clock.monotonic()


async def test_a_real_clock_change_is_adopted_even_from_slow_samples() -> None:
    # a -1021 after the exchange clock jumped 2 minutes: the old offset is impossible now
    server, fake = make()
    await warm(server, fake)
    fake.offset_ms = TRUE_OFFSET + 120_000
    fake.legs = [(10, 5_000), (10, 3_000), (10, 4_000)]
    offset = await server.sync()
    assert server.round_trip_ms == 3_010  # the shortest of the three
    assert abs(offset - fake.offset_ms) <= 3_010 // 2


async def test_fast_round_trips_cost_one_request_per_sync() -> None:
    server, fake = make()
    fake.legs = [(15, 15), (10, 10), (12, 12), (30, 20), (25, 25)]  # jitter, none far above 20 ms
    for _ in range(5):
        await server.sync()
    assert fake.calls == 5 and server.slow_samples == 0
    assert server.offset_ms == TRUE_OFFSET and server.round_trip_ms == 50


async def test_the_first_sync_has_nothing_to_compare_with() -> None:
    server, fake = make()
    fake.legs = [(10, 2_000)]
    await server.sync()  # one request, accepted: the best estimate there is
    assert fake.calls == 1 and server.round_trip_ms == 2_010
    await server.sync()  # the next fast one replaces it
    assert server.offset_ms == TRUE_OFFSET and server.round_trip_ms == 20


async def test_a_failed_retry_keeps_the_first_sample() -> None:
    server, fake = make()
    await warm(server, fake)
    fake.offset_ms = TRUE_OFFSET + 60_000
    fake.legs = [(10, 1_000)]
    real = fake.__call__

    async def flaky() -> int:
        if fake.calls >= 5:
            raise ConnectionError("reset")
        return await real()

    server.bind(flaky)
    offset = await server.sync()
    assert server.round_trip_ms == 1_010 and abs(offset - fake.offset_ms) <= 505


def test_sample_bounds() -> None:
    s = TimeSample(sent_ms=1_000, received_ms=1_100, server_ms=6_020)
    assert s.round_trip_ms == 100 and s.offset_ms == 4_970
    assert s.admits(4_920) and s.admits(5_020) and not s.admits(4_919) and not s.admits(5_021)


@pytest.mark.parametrize("speed", [1.0, 600.0])
async def test_slowness_is_judged_in_wall_time(speed: float) -> None:
    server, fake = make(speed)
    await warm(server, fake)
    margin = int(server.slow_margin_wall_ms * speed)
    fake.legs = [(20, 20 + margin - 1)]  # just under 2x the best + the margin: a normal sample
    calls = fake.calls
    await server.sync()
    assert fake.calls - calls == 1 and server.slow_samples == 0
