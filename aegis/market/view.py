"""What the market feed shows an operator: a warm-up progress bar and a live status line.

On a terminal both are one carriage-return line on stderr (no dependency, nothing scrolls);
without one (a service, CI) the same facts go to the log as plain lines, sparsely.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from loguru import logger

from aegis.market.backfill import BackfillStats

__all__ = ["FeedSummary", "TerminalView"]

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


class TerminalView:
    """Renders the feed's summary; ``enabled=None`` means "when the stream is a terminal"."""

    def __init__(
        self,
        summary: Callable[[], FeedSummary],
        stats: BackfillStats,
        enabled: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self._summary = summary
        self._stats = stats
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty() if enabled is None else enabled
        self._started = time.monotonic()
        self._warm_logged = 0.0
        self._status_logged = 0.0
        self.warm_done = False
        self._open_line = False

    def warmup_started(self) -> None:
        self._started = time.monotonic()

    def symbol_warmed(self) -> None:
        summary = self._summary()
        if summary.warmed < summary.symbols or self.warm_done:
            self.refresh()
            return
        self.warm_done = True
        self._write(self.warmup_text(summary), final=True)
        logger.info(
            "market warm-up done: {} symbols in {:.1f} s, {} requests, weight {}, {} rate-limited",
            summary.symbols,
            time.monotonic() - self._started,
            self._stats.requests,
            self._stats.weight,
            self._stats.rate_limited,
        )

    def refresh(self) -> None:
        summary = self._summary()
        now = time.monotonic()
        if not self.warm_done:
            text = self.warmup_text(summary)
            if self._tty:
                self._write(text)
            elif now - self._warm_logged >= WARMUP_LOG_EVERY_S:
                self._warm_logged = now
                logger.info(text)
            return
        text = self.status_text(summary)
        if self._tty:
            self._write(text)
        elif now - self._status_logged >= STATUS_LOG_EVERY_S:
            self._status_logged = now
            logger.info(text)

    def warmup_text(self, summary: FeedSummary) -> str:
        stats = self._stats
        share = min(1.0, stats.fetched_candles / max(1, stats.planned_candles))
        bar = "#" * int(share * 30)
        return (
            f"warm-up [{bar:<30}] {share:4.0%}  {summary.warmed}/{summary.symbols} symbols"
            f"  {stats.requests} requests  weight {stats.weight}  429s {stats.rate_limited}"
        )

    @staticmethod
    def status_text(summary: FeedSummary) -> str:
        return (
            f"market  {summary.ready}/{summary.symbols} symbols  last closed {_hhmm(summary.last_closed_ms)} UTC"
            f"  holes {summary.holes}  reconnects {summary.reconnects}  pending {summary.pending}"
        )

    def _write(self, text: str, final: bool = False) -> None:
        """Draw the line and park the cursor at its start, so a log line written meanwhile
        replaces it instead of being glued to its end."""
        if not self._tty:
            return
        self._stream.write("\r" + text[:160].ljust(100) + ("\n" if final else "\r"))
        self._stream.flush()
        self._open_line = not final

    def close(self) -> None:
        """End the live line so the next log line starts on a fresh one."""
        if self._tty and self._open_line:
            self._stream.write("\n")
            self._stream.flush()
            self._open_line = False


def _hhmm(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%H:%M", time.gmtime(ms / 1000))
