"""Tick-to-trade: which closed kline an order being written answers.

The strategy runner sets ``TICK_RECEIVED`` (``time.perf_counter()`` when the stream delivered the
closed candle it evaluates) while it executes that candle's intents; the metrics hook on the REST
transport reads it in the same task when the first order request is written, and clears it, so
an order sent later (a retry, a protective stop from another task) is never counted as a reaction
to that tick.
"""

from __future__ import annotations

import gc
from contextvars import ContextVar

__all__ = ["TICK_RECEIVED", "settle_heap"]

TICK_RECEIVED: ContextVar[float | None] = ContextVar("aegis_tick_received", default=None)


def settle_heap() -> int:
    """Take everything alive now out of the garbage collector's future scans; returns how many objects.

    Called once the engine is trading-ready: the modules, exchangeInfo, filters and warm-up state
    alive then live for the whole run, and a full collection scanning them all lands on whichever
    frame or order is being handled at that moment (the tick-to-trade tail). Frozen objects are
    still freed by reference counting; only a cycle among them would wait for the process's end.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
