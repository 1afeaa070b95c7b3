"""Event-loop lag: how late the loop runs a timer that was due.

One cooperative loop runs every task of the engine. A callback that blocks it (a slow synchronous
call, a huge payload decoded in one go, a starved CPU) delays everything at once: stream frames,
keepalives, orders. The monitor sleeps ``interval_s`` of loop time again and again and measures
how much later than due it woke. /health is unhealthy while the worst of the last ``window``
samples is above the bound, so a single stall is visible for a few seconds, not one instant.

It measures the loop's own time: on a real loop that is the wall clock. On the virtual-time loop
of the tests, the demo and the backtest a timer is never late by construction, so there the
monitor only waits (its wake-ups would cost a tenth of an idle engine's CPU and measure nothing).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from aegis.virtualtime import VirtualTimeLoop

__all__ = ["LoopLagMonitor"]


class LoopLagMonitor:
    """The supervised task "loop-lag": ``await run()``; ``problems()`` for /health."""

    def __init__(
        self,
        max_lag_s: float,
        *,
        interval_s: float = 1.0,
        window: int = 10,
        on_sample: Callable[[float], None] | None = None,
    ) -> None:
        if interval_s <= 0 or window < 1:
            raise ValueError("interval_s must be > 0 and window >= 1")
        self.max_lag_s = max_lag_s
        self.interval_s = interval_s
        self.on_sample = on_sample
        self._recent: deque[float] = deque(maxlen=window)
        self.samples = 0

    @property
    def last_s(self) -> float:
        return self._recent[-1] if self._recent else 0.0

    def worst_s(self) -> float:
        """The worst lag of the recent window (seconds)."""
        return max(self._recent, default=0.0)

    def record(self, lag_s: float) -> None:
        lag_s = max(0.0, lag_s)
        self._recent.append(lag_s)
        self.samples += 1
        if self.on_sample is not None:
            self.on_sample(lag_s)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        if isinstance(loop, VirtualTimeLoop):
            await asyncio.Event().wait()  # never lags: nothing to measure
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.record(loop.time() - due)

    def problems(self) -> list[str]:
        worst = self.worst_s()
        if worst <= self.max_lag_s:
            return []
        seconds = len(self._recent) * self.interval_s
        return [
            f"event loop lagged {worst:.2f} s within the last {seconds:.0f} s (bound {self.max_lag_s:.2f} s): "
            "something blocks the loop or the CPU is starved"
        ]
