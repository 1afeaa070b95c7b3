"""The exchange's clock as seen from here: engine time plus a measured offset.

Signed requests carry ``timestamp``; Binance rejects it (-1021) when it is more than
1000 ms ahead of its clock or older than ``recvWindow``. The offset is measured from
GET /fapi/v1/time at the midpoint of the round trip, refreshed periodically and at once
after a -1021 / -5028. It runs on the engine ``Clock`` so accelerated tests agree with
the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from loguru import logger

from aegis.clock import Clock

__all__ = ["ServerClock", "TimeSource"]

ServerTimeFetcher = Callable[[], Awaitable[int]]


class TimeSource(Protocol):
    """What the governor and the WebSocket need from a clock."""

    def now_ms(self) -> int: ...

    def monotonic(self) -> float: ...

    def wall_seconds(self, seconds: float) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class ServerClock:
    """Server epoch ms = engine ``Clock.now_ms()`` + ``offset_ms``."""

    def __init__(self, clock: Clock, *, refresh_interval_s: float = 300.0) -> None:
        self.clock = clock
        self.refresh_interval_s = refresh_interval_s
        self.offset_ms = 0
        self.round_trip_ms: int | None = None
        self.synced_at: float | None = None
        self.sync_count = 0
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
            sent = self.clock.now_ms()
            server_ms = await self._fetch()
            received = self.clock.now_ms()
            previous = self.offset_ms
            self.offset_ms = server_ms - (sent + received) // 2
            self.round_trip_ms = received - sent
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
