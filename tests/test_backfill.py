"""Backfill planning and fetching: minimum request weight, closed candles only, patient retries."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.binance.constants import klines_weight
from aegis.binance.errors import RateLimited, Rejected, Retryable
from aegis.binance.ratelimit import Priority
from aegis.domain import Candle
from aegis.market.backfill import (
    CLOSE_MARGIN_MS,
    Backfiller,
    closed_in_range,
    missing_ranges,
    plan_limits,
    plan_requests,
    plan_weight,
)
from tests.factories import MINUTE_MS, StillClock, candle

T0 = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE_MS


@cache
def _reference(n: int) -> tuple[int, int]:
    """Exhaustive minimum (weight, requests) over every request size 1..1500."""
    if n == 0:
        return (0, 0)
    best = None
    for size in (99, 499, 1000, 1500, n):
        size = min(size, n, 1500)
        w, r = _reference(n - size)
        option = (w + klines_weight(size), r + 1)
        best = option if best is None or option < best else best
    assert best is not None
    return best


def test_a_1000_candle_warm_up_is_one_request_of_weight_5() -> None:
    assert plan_limits(1000) == [1000]
    assert plan_weight(1000) == 5


def test_odd_sizes_beat_the_naive_plan() -> None:
    assert plan_weight(998) == 4  # two limit-499 requests, not one of weight 5
    assert plan_weight(1500) == 7  # 3 x 499 + 3, not one limit-1500 request (10)
    assert plan_weight(1001) == 5  # 499 + 499 + 3, not 1000 + 1 (6) nor one limit-1001 request (10)
    assert plan_limits(1) == [1]
    assert plan_limits(0) == []


def test_plan_matches_an_exhaustive_search_up_to_a_day_and_beyond() -> None:
    for n in [*range(1, 3100), 5999, 6000, 6001, 6500, 7777, 10080]:
        limits = plan_limits(n)
        assert sum(limits) == n
        assert all(1 <= size <= 1500 for size in limits)
        assert (sum(klines_weight(s) for s in limits), len(limits)) == _reference(n), n


@settings(max_examples=200, deadline=None)
@given(first=st.integers(0, 10_000), count=st.integers(1, 5000))
def test_requests_cover_each_minute_exactly_once(first: int, count: int) -> None:
    start = T0 + first * MINUTE_MS
    last = start + (count - 1) * MINUTE_MS
    requests = plan_requests(start, last)
    covered = []
    for request in requests:
        assert request.end_ms == request.start_ms + request.limit * MINUTE_MS - 1
        covered += [request.start_ms + i * MINUTE_MS for i in range(request.limit)]
    assert covered == [start + i * MINUTE_MS for i in range(count)]
    assert plan_requests(last, start - MINUTE_MS) == []


def test_closed_in_range_drops_the_forming_row_duplicates_and_strays() -> None:
    rows = [candle("X", T0 + i * MINUTE_MS) for i in (3, 1, 2, 2, 0, 9)]
    now = T0 + 4 * MINUTE_MS + 30_000  # the candle opening at T0+4m is still forming
    forming = candle("X", T0 + 4 * MINUTE_MS)
    got = closed_in_range([*rows, forming], T0 + MINUTE_MS, T0 + 5 * MINUTE_MS, now)
    assert [c.open_time_ms for c in got] == [T0 + i * MINUTE_MS for i in (1, 2, 3)]


def test_a_candle_that_closed_a_moment_ago_waits_for_the_safety_margin() -> None:
    row = candle("X", T0)
    assert closed_in_range([row], T0, T0, T0 + MINUTE_MS + 1) == []
    assert closed_in_range([row], T0, T0, T0 + MINUTE_MS + CLOSE_MARGIN_MS) == [row]


def test_missing_ranges() -> None:
    rows = [candle("X", T0 + i * MINUTE_MS) for i in (2, 3, 6)]
    assert missing_ranges(rows, T0, T0 + 8 * MINUTE_MS) == [
        (T0, T0 + MINUTE_MS),
        (T0 + 4 * MINUTE_MS, T0 + 5 * MINUTE_MS),
        (T0 + 7 * MINUTE_MS, T0 + 8 * MINUTE_MS),
    ]
    assert missing_ranges([], T0, T0) == [(T0, T0)]


class ScriptedRest:
    """Answers klines from a dict of candles, after raising the scripted errors in turn."""

    def __init__(self, candles: dict[int, Candle], errors: list[Exception] | None = None) -> None:
        self.candles = candles
        self.errors = list(errors or [])
        self.calls: list[tuple[int | None, int | None, int, Priority]] = []

    async def klines(
        self,
        symbol: str,
        interval: str = "1m",
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
        priority: Priority = Priority.BACKFILL,
    ) -> list[Candle]:
        self.calls.append((start_ms, end_ms, limit, priority))
        if self.errors:
            raise self.errors.pop(0)
        assert start_ms is not None and end_ms is not None
        return [c for t, c in sorted(self.candles.items()) if start_ms <= t <= end_ms][:limit]


def _history(n: int) -> dict[int, Candle]:
    return {T0 + i * MINUTE_MS: candle("X", T0 + i * MINUTE_MS) for i in range(n)}


async def test_fetch_retries_rate_limits_and_transient_errors_then_returns_everything() -> None:
    clock = StillClock(T0 + 2000 * MINUTE_MS)
    rest = ScriptedRest(_history(1500), [RateLimited("429", http_status=429), Retryable("503")])
    backfiller = Backfiller(rest, clock)
    got = await backfiller.fetch("X", T0, T0 + 1499 * MINUTE_MS)
    assert [c.open_time_ms for c in got] == sorted(rest.candles)
    assert backfiller.stats.rate_limited == 1
    assert backfiller.stats.retries == 2
    assert backfiller.stats.weight == plan_weight(1500) == 7  # 3 x 499 + 3, not one limit-1500 (10)
    assert {call[3] for call in rest.calls} == {Priority.BACKFILL}
    assert len(clock.slept) == 1  # backoff after the 503; the 429 waits in the governor instead


async def test_fetch_gives_up_on_what_retrying_cannot_fix() -> None:
    rest = ScriptedRest({}, [Rejected("Invalid symbol.", code=-1121)])
    with pytest.raises(Rejected):
        await Backfiller(rest, StillClock(T0)).fetch("X", T0, T0)
