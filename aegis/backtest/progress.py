"""How far a backtest is: a rich progress bar with candles/s on a terminal, a log line otherwise.

Fed by the market feed's listener (every closed candle stored), so it adds no timer to the loop:
on virtual time a timer would cost a jump. Wall time is read here only to pace the screen and to
show a speed; nothing of it reaches the backtest's outputs.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from loguru import logger

__all__ = ["Progress"]

SCREEN_REFRESH_S = 0.2
LOG_EVERY = 0.1  # without a terminal: a line per tenth of the run


class Progress:
    def __init__(self, total: int, *, stream: TextIO | None = None, terminal: bool | None = None) -> None:
        self.total = max(1, total)
        self.done = 0
        self._stream = stream or sys.stderr
        self._terminal = self._stream.isatty() if terminal is None else terminal
        self._started = time.monotonic()
        self._shown = 0.0
        self._next_log = LOG_EVERY
        self._bar: object | None = None
        self._task: object | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        if not self._terminal:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        bar = Bar(
            TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TextColumn("candles"),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(file=self._stream), auto_refresh=False, redirect_stderr=True, transient=False,
        )  # fmt: skip
        bar.start()
        self._task = bar.add_task("backtest", total=self.total, rate="")
        self._bar = bar

    def candle(self, _symbol: str, _open_ms: int) -> None:
        """One closed candle reached the engine's store (a MarketFeed listener)."""
        self.done += 1
        if self._bar is not None:
            now = time.monotonic()
            if now - self._shown >= SCREEN_REFRESH_S:
                self._shown = now
                self._show()
        elif self.done >= self._next_log * self.total:
            self._next_log += LOG_EVERY
            logger.info("backtest: {} of {} candles ({:.0%}), {}", self.done, self.total, self.done / self.total, self.rate())

    def rate(self) -> str:
        elapsed = time.monotonic() - self._started
        return f"{self.done / elapsed:,.0f} candles/s" if elapsed > 0 else "-"

    def _show(self) -> None:
        from rich.progress import Progress as Bar

        assert isinstance(self._bar, Bar)
        self._bar.update(self._task, completed=min(self.done, self.total), rate=self.rate())  # type: ignore[arg-type]
        self._bar.refresh()

    def stop(self) -> None:
        if self._bar is not None:
            self._show()
            self._bar.stop()  # type: ignore[attr-defined]
            self._bar = None
