"""Tick-to-trade: which closed kline an order being written answers.

The strategy runner sets ``TICK_RECEIVED`` (``time.perf_counter()`` when the stream delivered the
closed candle it evaluates) while it executes that candle's intents; the metrics hook on the REST
transport reads it in the same task when the first order request is written, and clears it, so
an order sent later (a retry, a protective stop from another task) is never counted as a reaction
to that tick.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["TICK_RECEIVED"]

TICK_RECEIVED: ContextVar[float | None] = ContextVar("aegis_tick_received", default=None)
