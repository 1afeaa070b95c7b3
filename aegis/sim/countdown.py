"""POST /fapi/v1/countdownCancelAll: a dead man's switch per account and symbol.

Binance [docs: Auto-Cancel All Open Orders]: "Cancel all open orders of the specified symbol at
the end of the specified countdown"; each call replaces the running countdown (a heartbeat),
``countdownTime=0`` stops it; weight 10; the answer is ``{"symbol": ..., "countdownTime":
"<ms as a string>"}``. Binance checks countdowns about every 10 ms; the simulator fires at the
deadline on its own clock.

Conditional (algo) orders are NOT cancelled. UNCONFIRMED: the endpoint predates the December
2025 migration of conditional orders to the Algo Service, it names "open orders" (what
``DELETE /fapi/v1/allOpenOrders`` cancels), and the Algo Service has its own cancel-all
(``DELETE /fapi/v1/algoOpenOrders``); so protective stops placed through ``/fapi/v1/algoOrder``
are taken to survive the countdown, which is also what a dead man's switch should leave behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aegis.sim.clock import SimClock

log = logging.getLogger("aegis.sim.countdown")

CancelAll = Callable[[str, str, int], None]  # (api_key, symbol, at_ms)


class Countdowns:
    """The running countdowns, one per (api_key, symbol), each a timer on the exchange clock."""

    def __init__(self, clock: SimClock, cancel_all: CancelAll) -> None:
        self.clock = clock
        self.cancel_all = cancel_all
        self._timers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.deadlines: dict[tuple[str, str], int] = {}
        self.fired: list[tuple[str, str, int]] = []

    def set(self, api_key: str, symbol: str, countdown_ms: int) -> None:
        """Replace the countdown of (api_key, symbol); 0 stops it."""
        key = (api_key, symbol)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self.deadlines.pop(key, None)
        if countdown_ms == 0:
            return
        deadline = self.clock.now_ms() + countdown_ms
        self.deadlines[key] = deadline
        self._timers[key] = asyncio.get_running_loop().create_task(
            self._fire_at(key, deadline), name=f"sim-countdown-{symbol}"
        )

    async def _fire_at(self, key: tuple[str, str], deadline: int) -> None:
        await self.clock.sleep_until(deadline)
        if self.deadlines.get(key) != deadline:
            return
        del self.deadlines[key]
        self._timers.pop(key, None)
        api_key, symbol = key
        log.info("countdownCancelAll fired for %s… %s at %d", api_key[:6], symbol, deadline)
        self.fired.append((api_key, symbol, deadline))
        self.cancel_all(api_key, symbol, deadline)

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
