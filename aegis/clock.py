"""The engine's time: the protocol every timer needs, and the clock that provides it.

Every timer in the engine (keepalives, staleness, backoff, rotation, reconcile periods) reads a
``TimeSource``. ``Clock`` derives its time from the event loop it was created on, so the same
code runs on real time (production, at speed 1), on an accelerated wall clock (the demo) and on
a ``VirtualTimeLoop`` (tests, the backtest), where an hour passes the moment nothing else is left
to do. ``ServerClock`` in the adapter adds the exchange's offset on top.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "LoopTime", "TimeSource"]


class TimeSource(Protocol):
    """What timers need from a clock: epoch ms, interval seconds, and sleeping in that time."""

    def now_ms(self) -> int: ...

    def monotonic(self) -> float: ...

    def wall_seconds(self, seconds: float) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopTime:
    """Seconds on the time base of the event loop that first reads it.

    Built outside a loop (a synchronous fixture, a constructor), it counts on the monotonic wall
    clock until a running loop reads it, then continues seamlessly on that loop's ``time()``:
    virtual on a ``VirtualTimeLoop``, the monotonic clock on asyncio's and uvloop's loops.
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


class Clock:
    """Epoch milliseconds and interval seconds, running ``speed`` times faster than the loop's time."""

    def __init__(self, speed: float = 1.0, start_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be > 0")
        self.speed = float(speed)
        self._time = LoopTime()
        self._anchor = self._time()
        self._anchor_ms = float(start_ms if start_ms is not None else time.time() * 1000.0)

    def now_ms(self) -> int:
        """Local epoch time in ms (add the server offset from ``aegis.binance`` to sign requests)."""
        return int(self._anchor_ms + (self._time() - self._anchor) * 1000.0 * self.speed)

    def monotonic(self) -> float:
        """Seconds for measuring intervals; never jumps backwards."""
        return (self._time() - self._anchor) * self.speed

    def wall_seconds(self, seconds: float) -> float:
        """Loop-time duration of ``seconds`` of clock time."""
        return max(0.0, seconds / self.speed)

    def set_rate(self, speed: float, now_ms: int) -> None:
        """Run at ``speed`` from ``now_ms`` on: follows an exchange whose clock runs at another rate."""
        if speed <= 0:
            raise ValueError("clock speed must be > 0")
        self._anchor = self._time()
        self._anchor_ms = float(now_ms)
        self.speed = float(speed)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of clock time."""
        await asyncio.sleep(self.wall_seconds(seconds))
