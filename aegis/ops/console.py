"""The live terminal view of a running engine (rich): what it trades, holds and worries about.

Shown only when stderr is a terminal and logs are not JSON. Log lines keep scrolling above the view
(they are written to the current ``sys.stderr``, which rich's live display redirects), so the two
never corrupt each other. Refreshed twice a second of wall time from a snapshot the engine gives.
"""

from __future__ import annotations

import asyncio
import datetime
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = ["LiveView", "SymbolRow", "ViewData"]


@dataclass(frozen=True)
class SymbolRow:
    symbol: str
    last_closed_ms: int | None
    last_close: str
    position: str
    unrealized: str
    open_orders: int
    stops: str


@dataclass(frozen=True)
class ViewData:
    clock_ms: int
    warmup: str  # "" once warm
    equity: str
    realized: str
    fees: str
    streams: str
    reconcile: str
    orders: str
    rejections: str
    alerts: list[str] = field(default_factory=list)  # /health problems, kill switch, halt
    rows: list[SymbolRow] = field(default_factory=list)


class LiveView:
    def __init__(self, data: Callable[[], ViewData], stream: TextIO | None = None) -> None:
        self._data = data
        self._console = Console(file=stream or sys.stderr, highlight=False)
        self._live: Live | None = None

    @staticmethod
    def wanted(json_logs: bool, stream: TextIO | None = None) -> bool:
        return not json_logs and (stream or sys.stderr).isatty()

    def start(self) -> None:
        self._live = Live(self.render(), console=self._console, refresh_per_second=2, redirect_stderr=True, transient=False)
        self._live.start()

    async def run(self) -> None:
        """Refresh until cancelled (wall-time pacing: a screen, not a clock of the exchange)."""
        if self._live is None:
            self.start()
        assert self._live is not None
        try:
            while True:
                self._live.update(self.render())
                await asyncio.sleep(0.5)
        finally:
            self.stop()

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.stop()
            self._live = None
            self._console.line()  # the next log line starts on a line of its own

    def render(self) -> Group:
        d = self._data()
        when = datetime.datetime.fromtimestamp(d.clock_ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        head = Text.assemble(
            ("aegis  ", "bold"), (when, "cyan"), "   equity ", (d.equity, "bold"), "   realized ", d.realized,
            "   fees ", d.fees,
        )  # fmt: skip
        lines: list[Text | Table] = [head]
        if d.warmup:
            lines.append(Text(f"warm-up {d.warmup}", style="yellow"))
        lines.append(Text(f"streams {d.streams}   reconcile {d.reconcile}   orders {d.orders}   rejections {d.rejections}"))
        table = Table(box=None, pad_edge=False, header_style="bold")
        for title in ("symbol", "last candle", "close", "position", "unrealized", "orders", "stops"):
            table.add_column(title)
        for r in d.rows:
            last = "-" if r.last_closed_ms is None else datetime.datetime.fromtimestamp(r.last_closed_ms / 1000, datetime.UTC).strftime("%H:%M")
            table.add_row(r.symbol, last, r.last_close, r.position, r.unrealized, str(r.open_orders), r.stops)
        lines.append(table)
        lines.extend(Text(f"! {a}", style="bold red") for a in d.alerts[:6])
        return Group(*lines)
