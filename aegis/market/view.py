"""What the market feed logs for an operator: warm-up progress and a sparse status line.

The live terminal view is the engine's (``aegis.ops.console``, rich); the feed only logs, at a
rate a log file can take: warm-up progress every few seconds, its end once, then a status line
a minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from aegis.clock import LoopTime
from aegis.market.backfill import BackfillStats

__all__ = ["FeedLog", "FeedSummary"]

WARMUP_LOG_EVERY_S = 5.0
STATUS_LOG_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class FeedSummary:
    symbols: int
    ready: int
    warmed: int
    last_closed_ms: int | None  # the oldest "newest candle" across symbols: the laggard
    holes: int
    reconnects: int
    pending: int


class FeedLog:
    def __init__(self, summary: Callable[[], FeedSummary], stats: BackfillStats) -> None:
        self._summary = summary
        self.stats = stats
        self._now = LoopTime()  # the loop's seconds: wall time live, virtual time in tests
        self._started = self._now()
        self._warm_logged = -WARMUP_LOG_EVERY_S
        self._status_logged = self._now()
        self.warm_done = False

    def warmup_started(self) -> None:
        self._started = self._now()

    def symbol_warmed(self) -> None:
        summary = self._summary()
        if summary.warmed < summary.symbols or self.warm_done:
            self.refresh()
            return
        self.warm_done = True
        logger.info(
            "market warm-up done: {} symbols in {:.1f} s, {} requests, weight {}, {} rate-limited",
            summary.symbols,
            self._now() - self._started,
            self.stats.requests,
            self.stats.weight,
            self.stats.rate_limited,
        )

    def refresh(self) -> None:
        now = self._now()
        summary = self._summary()
        if not self.warm_done:
            if now - self._warm_logged >= WARMUP_LOG_EVERY_S:
                self._warm_logged = now
                logger.info(self.warmup_text(summary))
        elif now - self._status_logged >= STATUS_LOG_EVERY_S:
            self._status_logged = now
            logger.info(self.status_text(summary))

    def warmup_share(self) -> float:
        return min(1.0, self.stats.fetched_candles / max(1, self.stats.planned_candles))

    def warmup_text(self, summary: FeedSummary) -> str:
        return (
            f"warm-up {self.warmup_share():4.0%}  {summary.warmed}/{summary.symbols} symbols"
            f"  {self.stats.requests} requests  weight {self.stats.weight}  429s {self.stats.rate_limited}"
        )

    @staticmethod
    def status_text(summary: FeedSummary) -> str:
        return (
            f"market  {summary.ready}/{summary.symbols} symbols  last closed {_hhmm(summary.last_closed_ms)} UTC"
            f"  holes {summary.holes}  reconnects {summary.reconnects}  pending {summary.pending}"
        )

    def close(self) -> None:
        """Nothing to undo: the feed never draws on the terminal."""


def _hhmm(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%H:%M", time.gmtime(ms / 1000))
