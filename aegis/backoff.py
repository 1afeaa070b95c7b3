"""The one retry delay of the engine: capped exponential backoff with jitter.

Used by the task supervisor, REST backfill, WebSocket reconnects, listenKey acquisition and
start-up: the jitter spreads retries so that many clients (or many symbols) recovering from the
same outage do not hit the exchange in lockstep.
"""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(failures: int, initial_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Delay before retry number ``failures`` (1-based): uniform in [ceiling/2, ceiling],
    ceiling = min(max_s, initial_s * 2**(failures-1))."""
    ceiling = min(max_s, initial_s * 2 ** max(0, failures - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)
