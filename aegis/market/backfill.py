"""REST kline backfill: the cheapest requests for a range, fetched patiently, closed candles only.

Binance charges klines by ``limit`` in steps ([1,100) -> 1, [100,500) -> 2, [500,1000] -> 5,
>1000 -> 10), so the cheapest way to fetch N candles is not "as few requests as possible":
998 candles are two limit-499 requests (weight 4), not one of 1000 (weight 5), and 1500 are
3 x 499 + 3 (weight 7) rather than one limit-1500 request (weight 10) or 1000 + 500 (10).
``plan_limits`` finds the minimum weight, then the fewest requests, exactly; a 1000-candle
warm-up stays one limit-1000 request (weight 5, the same as 499 + 499 + 2 in fewer calls).

``Backfiller`` sends those requests through the adapter (whose RateGovernor admits them at
backfill priority and pauses everything after a 429), retries transient failures forever
with capped jittered backoff, and returns only candles that have closed by server time,
once each, oldest first. It never invents a candle: what the exchange does not return is
reported as missing by the caller, never filled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final, Protocol

from loguru import logger

from aegis.backoff import backoff_delay
from aegis.binance.clock import ServerClock
from aegis.binance.constants import klines_weight
from aegis.binance.errors import RateLimited, Retryable
from aegis.binance.ratelimit import Priority
from aegis.clock import TimeSource
from aegis.domain import MINUTE_MS, Candle

__all__ = [
    "BackfillStats",
    "Backfiller",
    "KlineRequest",
    "KlineSource",
    "close_margin_ms",
    "closed_in_range",
    "missing_ranges",
    "plan_limits",
    "plan_requests",
    "plan_weight",
]

# A row whose close time is this close to "now" may still be forming on the exchange if our
# estimate of server time is a little ahead; it is fetched again later, never stored early.
CLOSE_MARGIN_MS: Final = 2_000
# On an accelerated clock 2 s of exchange time are a few wall milliseconds, less than one
# event-loop hiccup; the margin never shrinks below this much wall time.
CLOSE_MARGIN_WALL_S: Final = 0.05
# Largest request of each weight step: enlarging a request within its step is free.
_STEP_LIMITS: Final = (99, 499, 1000, 1500)
# The cheapest step per candle (2/499); beyond this many candles whole 499-blocks are optimal.
_DP_SPAN: Final = 6_000


class KlineSource(Protocol):
    """What the backfill needs from the adapter (``aegis.binance.BinanceRest`` fits)."""

    async def klines(
        self,
        symbol: str,
        interval: str = "1m",
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
        priority: Priority = Priority.BACKFILL,
    ) -> list[Candle]: ...


# --- planning ----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _table() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Minimum (weight, requests) for 0.._DP_SPAN candles, and the first chunk that achieves it."""
    best: list[tuple[int, int]] = [(0, 0)]
    first: list[int] = [0]
    for n in range(1, _DP_SPAN + 1):
        options = []
        for cap in _STEP_LIMITS:
            size = min(n, cap)
            w, r = best[n - size]
            options.append((w + klines_weight(size), r + 1, -size))
        w, r, neg = min(options)
        best.append((w, r))
        first.append(-neg)
    return tuple(w for w, _ in best), tuple(first)


def plan_limits(count: int) -> list[int]:
    """Request sizes for ``count`` candles at minimum total weight, then fewest requests."""
    if count < 0:
        raise ValueError("count must be >= 0")
    sizes: list[int] = []
    while count > _DP_SPAN:  # 499 has the lowest weight per candle; the DP settles the tail
        sizes.append(499)
        count -= 499
    _, first = _table()
    while count:
        sizes.append(first[count])
        count -= first[count]
    return sorted(sizes, reverse=True)


def plan_weight(count: int) -> int:
    """The minimum request weight that can fetch ``count`` candles."""
    return sum(klines_weight(size) for size in plan_limits(count))


@dataclass(frozen=True, slots=True)
class KlineRequest:
    start_ms: int  # open time of the first candle
    end_ms: int  # close time of the last candle (open + 59 999): inclusive under either reading
    limit: int

    @property
    def weight(self) -> int:
        return klines_weight(self.limit)


def plan_requests(first_open_ms: int, last_open_ms: int) -> list[KlineRequest]:
    """The requests that fetch every 1m candle opening in [first, last], oldest first."""
    if last_open_ms < first_open_ms:
        return []
    count = (last_open_ms - first_open_ms) // MINUTE_MS + 1
    requests = []
    start = first_open_ms
    for size in plan_limits(count):
        requests.append(KlineRequest(start, start + size * MINUTE_MS - 1, size))
        start += size * MINUTE_MS
    return requests


# --- sanitising --------------------------------------------------------------------------


def close_margin_ms(clock: TimeSource) -> int:
    """How long after its close time a candle counts as surely closed by our estimate of server time.

    The estimate is off by at most half the round trip of the time sample it came from, so
    that half is added: a slow sample widens the margin instead of letting a forming candle in.
    """
    margin = CLOSE_MARGIN_MS
    wall_per_second = clock.wall_seconds(1.0)
    if wall_per_second > 0:
        margin = max(margin, int(1000 * CLOSE_MARGIN_WALL_S / wall_per_second))
    if isinstance(clock, ServerClock) and clock.round_trip_ms is not None:
        margin += max(0, clock.round_trip_ms) // 2 + 1
    return margin


def closed_in_range(
    candles: Iterable[Candle],
    first_open_ms: int,
    last_open_ms: int,
    server_now_ms: int,
    *,
    margin_ms: int = CLOSE_MARGIN_MS,
) -> list[Candle]:
    """Candles opening in [first, last] that have closed by server time: once each, oldest first."""
    closed_before = server_now_ms - margin_ms
    by_open = {
        c.open_time_ms: c
        for c in candles
        if first_open_ms <= c.open_time_ms <= last_open_ms
        and c.open_time_ms % MINUTE_MS == 0
        and c.close_time_ms < closed_before
    }
    return [by_open[t] for t in sorted(by_open)]


def missing_ranges(candles: Sequence[Candle], first_open_ms: int, last_open_ms: int) -> list[tuple[int, int]]:
    """Open-time ranges in [first, last] that ``candles`` (sorted, unique) do not cover."""
    missing = []
    cursor = first_open_ms
    for candle in candles:
        if candle.open_time_ms > cursor:
            missing.append((cursor, candle.open_time_ms - MINUTE_MS))
        cursor = max(cursor, candle.open_time_ms + MINUTE_MS)
    if cursor <= last_open_ms:
        missing.append((cursor, last_open_ms))
    return missing


# --- fetching ----------------------------------------------------------------------------


@dataclass
class BackfillStats:
    """Counters for /state, the progress line and the warm-up benchmark."""

    requests: int = 0
    weight: int = 0
    candles: int = 0
    rate_limited: int = 0
    retries: int = 0
    in_flight: int = 0
    last_error: str = ""
    planned_candles: int = 0
    fetched_candles: int = 0
    by_limit: dict[int, int] = field(default_factory=dict)
    weight_by_purpose: dict[str, int] = field(default_factory=dict)  # warmup, gap, reconnect, confirm


class Backfiller:
    """Fetches closed 1m candles for open-time ranges, at minimum weight, through the governor."""

    def __init__(
        self,
        rest: KlineSource,
        server_clock: TimeSource,
        *,
        max_in_flight: int = 8,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 30.0,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self._rest = rest
        self._clock = server_clock
        self._slots = asyncio.Semaphore(max_in_flight)
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._on_progress = on_progress
        self.stats = BackfillStats()

    def closed_until_ms(self) -> int:
        """Candles closing before this server time have surely closed."""
        return self._clock.now_ms() - close_margin_ms(self._clock)

    async def fetch(
        self,
        symbol: str,
        first_open_ms: int,
        last_open_ms: int,
        *,
        closed_before_ms: int | None = None,
        purpose: str = "gap",
    ) -> list[Candle]:
        """Every closed candle the exchange has in [first, last]: oldest first, once each.

        ``closed_before_ms`` is for ranges the stream already proved closed (a later candle
        arrived closed); otherwise our estimate of server time decides. Raises only what
        retrying cannot fix (Rejected, AuthError, ParseError...).
        """
        requests = plan_requests(first_open_ms, last_open_ms)
        self.stats.planned_candles += sum(r.limit for r in requests)
        try:
            async with asyncio.TaskGroup() as group:  # one failure cancels the sibling requests
                tasks = [group.create_task(self._fetch_one(symbol, r, purpose)) for r in requests]
        except ExceptionGroup as group_error:
            raise group_error.exceptions[0] from None
        rows = [candle for task in tasks for candle in task.result()]
        closed_before = self.closed_until_ms() if closed_before_ms is None else closed_before_ms
        return closed_in_range(rows, first_open_ms, last_open_ms, closed_before, margin_ms=0)

    async def _fetch_one(self, symbol: str, request: KlineRequest, purpose: str) -> list[Candle]:
        failures = 0
        while True:
            try:
                async with self._slots:
                    self.stats.in_flight += 1
                    try:
                        rows = await self._rest.klines(
                            symbol, "1m", request.start_ms, request.end_ms, request.limit, Priority.BACKFILL
                        )
                    finally:
                        self.stats.in_flight -= 1
            except RateLimited as exc:
                # The adapter has paused its governor until the exchange allows us again; the
                # next attempt queues there instead of hammering (and risking a 418 ban).
                self.stats.rate_limited += 1
                self.stats.retries += 1
                self.stats.last_error = str(exc)
                logger.warning("klines {} rate limited; retrying when the governor allows", symbol)
                continue
            except asyncio.CancelledError:
                self._done(request)
                raise
            except Retryable as exc:
                failures += 1
                self.stats.retries += 1
                self.stats.last_error = str(exc)
                delay = backoff_delay(failures, self._retry_initial, self._retry_max)
                logger.warning("klines {} failed ({}); retry #{} in {:.1f} s", symbol, exc, failures, delay)
                await self._clock.sleep(delay)
                continue
            except Exception:
                self._done(request)
                raise
            self._done(request)
            self.stats.requests += 1
            self.stats.weight += request.weight
            self.stats.by_limit[request.limit] = self.stats.by_limit.get(request.limit, 0) + 1
            by_purpose = self.stats.weight_by_purpose
            by_purpose[purpose] = by_purpose.get(purpose, 0) + request.weight
            self.stats.candles += len(rows)
            return rows

    def _done(self, request: KlineRequest) -> None:
        """Progress counts requests that ended, fetched or given up, so the bar always completes."""
        self.stats.fetched_candles += request.limit
        if self._on_progress is not None:
            self._on_progress()

