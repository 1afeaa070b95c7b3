"""The exchange's clock as seen from here: engine time plus a measured offset.

Signed requests carry ``timestamp``; Binance rejects it (-1021) when it is more than
1000 ms ahead of its clock or older than ``recvWindow``. The offset is measured from
GET /fapi/v1/time at the midpoint of the round trip, refreshed periodically and at once
after a -1021 / -5028. It runs on the engine ``Clock`` so accelerated tests agree with
the simulator.

The midpoint is only as good as the round trip is short: the error is up to half of it.
One slow reply (a GC pause, a congested link; at 600x a 200 ms hiccup is 2 minutes) must
not move the estimate, so a sync whose round trip is far above the recent minimum takes
a couple more samples and keeps the shortest; if every one is slow and still agrees with
the current offset, the current (more precise) offset stays. A slow sample that cannot
agree with it (the exchange clock really moved: a -1021 after a jump) is adopted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loguru import logger

from aegis.clock import Clock

__all__ = ["ServerClock", "TimeSample"]

ServerTimeFetcher = Callable[[], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class TimeSample:
    """One GET /fapi/v1/time: engine ms when sent and received, and the server's stamp."""

    sent_ms: int
    received_ms: int
    server_ms: int

    @property
    def round_trip_ms(self) -> int:
        return self.received_ms - self.sent_ms

    @property
    def offset_ms(self) -> int:
        """The midpoint estimate: wrong by at most half the round trip."""
        return self.server_ms - (self.sent_ms + self.received_ms) // 2

    def admits(self, offset_ms: int) -> bool:
        """Whether ``offset_ms`` is possible: the server stamped between send and receipt."""
        return self.server_ms - self.received_ms <= offset_ms <= self.server_ms - self.sent_ms


class ServerClock:
    """Server epoch ms = engine ``Clock.now_ms()`` + ``offset_ms``."""

    def __init__(
        self,
        clock: Clock,
        *,
        refresh_interval_s: float = 300.0,
        max_samples: int = 3,
        history: int = 8,
        slow_factor: float = 2.0,
        slow_margin_wall_ms: float = 10.0,
    ) -> None:
        self.clock = clock
        self.refresh_interval_s = refresh_interval_s
        self.max_samples = max(1, max_samples)
        """Requests one sync may send while its round trips are slow."""
        self.slow_factor = slow_factor
        self.slow_margin_wall_ms = slow_margin_wall_ms
        """A round trip is slow above ``slow_factor`` x the recent minimum + this (wall ms)."""
        self.offset_ms = 0
        self.round_trip_ms: int | None = None
        """Round trip of the sample the current offset came from (its error is at most half)."""
        self.synced_at: float | None = None
        self.sync_count = 0
        self.slow_samples = 0
        """Samples found slow against the recent minimum (not all of them discarded)."""
        self._recent: deque[int] = deque(maxlen=max(1, history))  # recent round trips, engine ms
        self._fetch: ServerTimeFetcher | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def bind(self, fetch: ServerTimeFetcher) -> None:
        """Set how to ask the exchange for its time (the REST facade binds itself)."""
        self._fetch = fetch

    # --- time ---------------------------------------------------------------------------

    def now_ms(self) -> int:
        """Estimated exchange time; what signed requests use as ``timestamp``."""
        return self.clock.now_ms() + self.offset_ms

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def wall_seconds(self, seconds: float) -> float:
        return self.clock.wall_seconds(seconds)

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    @property
    def synced(self) -> bool:
        return self.synced_at is not None

    # --- sync ---------------------------------------------------------------------------

    async def sync(self) -> int:
        """Measure the offset now; concurrent callers share one measurement."""
        if self._fetch is None:
            raise RuntimeError("ServerClock.bind() was not called")
        started = self.sync_count
        async with self._lock:
            if self.sync_count != started:
                return self.offset_ms  # someone else just measured while we waited
            samples = [await self._sample(self._fetch)]
            while len(samples) < self.max_samples and self._is_slow(samples[-1].round_trip_ms):
                try:
                    samples.append(await self._sample(self._fetch))
                except Exception as exc:  # the first sample stands; a retry is a bonus
                    logger.debug("server time retry failed: {}", exc)
                    break
            best = min(samples, key=lambda x: x.round_trip_ms)
            slow = self._is_slow(best.round_trip_ms)
            self.slow_samples += sum(self._is_slow(x.round_trip_ms) for x in samples)
            self._recent.extend(x.round_trip_ms for x in samples)
            previous = self.offset_ms
            if slow and self.synced and best.admits(previous):
                logger.debug(
                    "server time: round trip {} ms (recent best {} ms) agrees with offset {} ms; kept",
                    best.round_trip_ms,
                    min(self._recent),
                    previous,
                )
            else:
                self.offset_ms = best.offset_ms
                self.round_trip_ms = best.round_trip_ms
            self.synced_at = self.clock.monotonic()
            self.sync_count += 1
        if abs(self.offset_ms - previous) > 500 or self.sync_count == 1:
            logger.info(
                "server clock offset {} ms (was {} ms, round trip {} ms)",
                self.offset_ms,
                previous,
                self.round_trip_ms,
            )
        return self.offset_ms

    async def _sample(self, fetch: ServerTimeFetcher) -> TimeSample:
        sent = self.clock.now_ms()
        server_ms = await fetch()
        return TimeSample(sent, self.clock.now_ms(), server_ms)

    def _is_slow(self, round_trip_ms: int) -> bool:
        """Far above the shortest recent round trip (never, before there is one)."""
        if not self._recent:
            return False
        margin_ms = self.slow_margin_wall_ms * self.clock.speed
        return round_trip_ms > min(self._recent) * self.slow_factor + margin_ms

    async def ensure_synced(self) -> None:
        """Sync once before the first signed request, and when the last sync is stale."""
        if self.synced_at is None or self.clock.monotonic() - self.synced_at >= self.refresh_interval_s:
            await self.sync()

    def start(self) -> None:
        """Start the periodic refresh task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._refresh_loop(), name="binance-server-clock")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _refresh_loop(self) -> None:
        """Refresh forever; a failed sync is logged and retried sooner, never fatal."""
        delay = 0.0
        while True:
            await self.clock.sleep(delay)
            try:
                await self.sync()
                delay = self.refresh_interval_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("server clock sync failed: {}", exc)
                delay = min(self.refresh_interval_s, 10.0)
