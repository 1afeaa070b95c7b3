"""The dead man's switch: the exchange cancels our resting orders if the engine stops heartbeating.

``POST /fapi/v1/countdownCancelAll`` (weight 10) per traded symbol every third of the countdown: if
the engine dies, hangs or loses the exchange for longer than the countdown, Binance cancels the
symbol's open orders, so a resting entry cannot fill into a position nobody manages. Conditional
(algo) orders are not "open orders" since Binance's Dec-2025 Algo Service (they have their own
cancel-all), so protective stops stay on the exchange; the simulator behaves so. Binance's page
predates the Algo Service and does not say it: set ``orders.countdown_cancel_s = 0`` to opt out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from loguru import logger

from aegis.clock import TimeSource

__all__ = ["CountdownSource", "heartbeat"]


class CountdownSource(Protocol):
    async def countdown_cancel_all(self, symbol: str, countdown_ms: int) -> None: ...


async def heartbeat(rest: CountdownSource, symbols: Sequence[str], countdown_s: float, clock: TimeSource) -> None:
    """Renew the countdown of every symbol until cancelled; a failed heartbeat is logged (the next
    one may still come in time; if none does, the exchange cancels, which is the point)."""
    countdown_ms = int(countdown_s * 1000)
    while True:
        for symbol in symbols:
            try:
                await rest.countdown_cancel_all(symbol, countdown_ms)
            except Exception as exc:
                logger.warning("dead man's switch heartbeat for {} failed: {}", symbol, exc)
        await clock.sleep(countdown_s / 3)
