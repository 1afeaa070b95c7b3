"""The engine's injectable time source.

Every timer in the engine (keepalives, staleness, backoff, rotation) reads a ``Clock`` so a
test can run the engine and the simulator on the same accelerated time: the 60-minute
listenKey expiry and the 24-hour cut then take seconds. Production uses speed 1.
"""

from __future__ import annotations

import asyncio
import time


class Clock:
    """Epoch milliseconds and monotonic seconds, both running ``speed`` times faster than the wall."""

    def __init__(self, speed: float = 1.0, start_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be > 0")
        self.speed = float(speed)
        self._anchor_wall = time.monotonic()
        self._anchor_ms = float(start_ms if start_ms is not None else time.time() * 1000.0)

    def now_ms(self) -> int:
        """Local epoch time in ms (add the server offset from ``aegis.binance`` to sign requests)."""
        return int(self._anchor_ms + (time.monotonic() - self._anchor_wall) * 1000.0 * self.speed)

    def monotonic(self) -> float:
        """Seconds for measuring intervals; never jumps backwards."""
        return (time.monotonic() - self._anchor_wall) * self.speed

    def wall_seconds(self, seconds: float) -> float:
        """Wall-clock duration of ``seconds`` of clock time."""
        return max(0.0, seconds / self.speed)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of clock time."""
        await asyncio.sleep(self.wall_seconds(seconds))
