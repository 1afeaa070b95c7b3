"""The simulator's one clock: the event loop's time, accelerated by a factor, or jumped.

Everything time-based in the simulator (candles, listenKey expiry, rate-limit windows,
the 24-hour cut) reads this clock, so tests can run hours of exchange time in seconds. It
follows the ``time()`` of the loop it was created on: on a virtual-time loop (tests, the
backtest) exchange time advances only when nothing is left to do at the current instant.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


class _LoopTime:
    """Seconds on the time base of the event loop that first reads it (the monotonic clock before).

    The engine has the same helper (aegis.clock.LoopTime); the simulator imports nothing from it.
    """

    __slots__ = ("_offset", "_source")

    def __init__(self) -> None:
        self._offset = 0.0
        self._source: Callable[[], float] | None
        try:
            self._source = asyncio.get_running_loop().time
        except RuntimeError:
            self._source = None

    def __call__(self) -> float:
        if self._source is not None:
            return self._source() + self._offset
        now = time.monotonic()
        try:
            source = asyncio.get_running_loop().time
        except RuntimeError:
            return now
        self._source, self._offset = source, now - source()
        return now


class SimClock:
    """Exchange time in epoch milliseconds, running ``speed`` times faster than the wall."""

    def __init__(self, speed: float = 1.0, start_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._speed = float(speed)
        self._time = _LoopTime()
        # Read on every request and step: the loop's own time() when it is the base (no offset,
        # the clock made on its loop: what _LoopTime would return, one call less).
        self._read: Callable[[], float] = self._time
        if self._time._source is not None and self._time._offset == 0.0:
            self._read = self._time._source
        self._anchor_wall = self._time()
        self._anchor_ms = float(start_ms if start_ms is not None else time.time() * 1000)
        # A dict, not a set: a jump wakes the sleepers in the order they slept, not in an order
        # set by their addresses (which made same-instant faults take effect in either order).
        self._sleepers: dict[asyncio.Future[None], None] = {}

    @property
    def speed(self) -> float:
        return self._speed

    def now_ms(self) -> int:
        return int(self._anchor_ms + (self._read() - self._anchor_wall) * 1000.0 * self._speed)

    def set_speed(self, speed: float) -> None:
        """Change the rate from now on; exchange time does not jump."""
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._reanchor()
        self._speed = float(speed)
        self._wake()

    def jump(self, ms: int) -> None:
        """Move exchange time by ``ms`` (may be negative) at once."""
        self._reanchor()
        self._anchor_ms += ms
        self._wake()

    def wall_seconds(self, sim_ms: float) -> float:
        """How long ``sim_ms`` of exchange time lasts on the wall at the current speed."""
        return max(0.0, sim_ms / 1000.0 / self._speed)

    async def sleep_until(self, target_ms: int) -> None:
        """Return once exchange time reaches ``target_ms``, waking early on jumps and speed changes.

        One future and one timer per wait: every loop of the exchange (the kline loop, each
        connection's keeper) sleeps here, and ``wait_for`` on an event cost a task, a timer and
        four callbacks per wait, a large share of a backtest's work per candle."""
        loop = asyncio.get_running_loop()
        while True:
            remaining = target_ms - self.now_ms()
            if remaining <= 0:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            timer = loop.call_later(self.wall_seconds(remaining), _release, waiter)
            self._sleepers[waiter] = None
            try:
                await waiter
            finally:
                timer.cancel()
                self._sleepers.pop(waiter, None)

    async def sleep(self, sim_ms: float) -> None:
        await self.sleep_until(self.now_ms() + int(sim_ms))

    def _reanchor(self) -> None:
        now = self._time()
        self._anchor_ms += (now - self._anchor_wall) * 1000.0 * self._speed
        self._anchor_wall = now

    def _wake(self) -> None:
        for waiter in list(self._sleepers):
            _release(waiter)


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
