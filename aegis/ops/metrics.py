"""GET /metrics: the engine in Prometheus' text format, from its own ``CollectorRegistry``.

Counters and gauges are read from the components at scrape time (``aegis.ops.collector``); only
latencies need observations where they happen, through small hooks the components call:

* ``aegis_tick_to_trade_seconds``: a closed kline frame received (decoded) -> the first order
  request of its evaluation written to the socket, signed (``aegis.ops.latency``, the transport's
  ``on_send``, which the HTTP client calls once the request's bytes are written);
* ``aegis_strategy_evaluation_seconds``: one ``Strategy.on_candle`` call (the runner's ``on_eval``);
* ``aegis_journal_write_seconds``: one journal transaction, fsync included (the journal's ``on_write``);
* ``aegis_event_loop_lag_seconds``: how late the loop ran a due timer (``LoopLagMonitor``).

The registry is the engine's own, not prometheus-client's global one, so several engines in one
process (the tests) never share a series. This module also holds two /health checks that are
about the process rather than a component: the event-loop lag and the clock offset.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from aegis.binance.endpoints import Endpoint
from aegis.binance.ratelimit import Cost
from aegis.ops.collector import EngineCollector
from aegis.ops.latency import TICK_RECEIVED
from aegis.ops.looplag import LoopLagMonitor

if TYPE_CHECKING:
    from aegis.engine.engine import Engine

__all__ = ["EngineMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_EVAL_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class EngineMetrics:
    """The engine's registry, its latency histograms, and the process-level health checks."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.registry = CollectorRegistry()
        self.tick_to_trade = Histogram(
            "aegis_tick_to_trade_seconds",
            "Closed kline frame received -> first order request of its evaluation written (wall seconds).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.strategy_evaluation = Histogram(
            "aegis_strategy_evaluation_seconds",
            "One strategy evaluation of a closed candle (wall seconds).",
            buckets=_EVAL_BUCKETS,
            registry=self.registry,
        )
        self.journal_write = Histogram(
            "aegis_journal_write_seconds",
            "One journal write transaction, commit included (wall seconds).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag_seconds = Histogram(
            "aegis_event_loop_lag_seconds",
            "How late the event loop ran a timer that was due (loop seconds).",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag = LoopLagMonitor(engine.settings.ops.max_loop_lag_s, on_sample=self.loop_lag_seconds.observe)
        self.registry.register(EngineCollector(engine, self.loop_lag))

    def attach(self) -> None:
        """Once the engine's parts exist: hook the latency observations into them."""
        e = self._engine
        if e.rest is not None:
            e.rest.transport.on_send = self._on_send
        if e.journal is not None:
            e.journal.on_write = self.journal_write.observe
        if e.runner is not None:
            e.runner.on_eval = self.strategy_evaluation.observe

    def render(self) -> bytes:
        """The text exposition of every series (GET /metrics)."""
        return generate_latest(self.registry)

    def problems(self) -> list[str]:
        """/health: the event loop lagging, the host clock too far from the exchange's."""
        out = self.loop_lag.problems()
        rest = self._engine.rest
        bound_ms = self._engine.settings.ops.max_clock_offset_ms
        if rest is not None and rest.server_clock.synced and abs(rest.offset_ms) > bound_ms:
            out.append(
                f"clock offset {rest.offset_ms} ms from the exchange (bound {bound_ms} ms): check NTP on this host"
            )
        return out

    def _on_send(self, endpoint: Endpoint, cost: Cost) -> None:
        """An order request was just written: if it answers a closed kline, time the reaction."""
        if not cost.orders:
            return
        received = TICK_RECEIVED.get()
        if received is not None:
            TICK_RECEIVED.set(None)  # the first order of the evaluation only
            self.tick_to_trade.observe(time.perf_counter() - received)
