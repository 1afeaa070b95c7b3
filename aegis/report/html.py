"""The run's HTML report: price candles with entries, exits and stops, the equity curve, the summary.

One self-contained file (plotly.js inlined: it opens offline, no CDN). Candles are shown at a
resolution that keeps the file light (1-minute candles up to ``MAX_BARS`` per symbol, coarser bars
beyond, aggregated exactly: first open, max high, min low, last close).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aegis.domain import MINUTE_MS, Candle, Fill
from aegis.report.summary import RunSummary

__all__ = ["MAX_BARS", "StopMark", "write_html_report"]

MAX_BARS = 3000


class StopMark:
    """A protective order placed at ``time_ms`` with trigger ``price`` (for the chart)."""

    __slots__ = ("kind", "price", "symbol", "time_ms")

    def __init__(self, symbol: str, time_ms: int, price: float, kind: str) -> None:
        self.symbol, self.time_ms, self.price, self.kind = symbol, time_ms, price, kind


def write_html_report(
    path: Path,
    summary: RunSummary,
    candles: dict[str, Sequence[Candle]],
    fills: Sequence[Fill],
    stops: Sequence[StopMark],
    equity_times: Sequence[int],
    equity: Sequence[float],
    *,
    title: str = "aegis run",
) -> Path:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    symbols = list(candles)
    rows = len(symbols) + 1
    # plotly refuses a spacing above 1 / (rows - 1): a run on 50 symbols needs a narrower one.
    fig = make_subplots(
        rows=rows, cols=1, shared_xaxes=False, vertical_spacing=min(0.06, 0.5 / rows),
        subplot_titles=[*symbols, "equity"], row_heights=[*([1.0] * len(symbols)), 0.6],
    )  # fmt: skip
    for row, symbol in enumerate(symbols, start=1):
        bars = _bars(candles[symbol])
        x = [_ts(t) for t, *_ in bars]
        fig.add_trace(
            go.Candlestick(
                x=x, open=[b[1] for b in bars], high=[b[2] for b in bars], low=[b[3] for b in bars],
                close=[b[4] for b in bars], name=symbol, showlegend=False,
            ),
            row=row, col=1,
        )  # fmt: skip
        for side, color, marker in (("BUY", "#1a9850", "triangle-up"), ("SELL", "#d73027", "triangle-down")):
            mine = [f for f in fills if f.symbol == symbol and f.side.value == side]
            if mine:
                fig.add_trace(
                    go.Scatter(
                        x=[_ts(f.time_ms) for f in mine], y=[float(f.price) for f in mine], mode="markers",
                        marker={"symbol": marker, "size": 10, "color": color}, name=f"{symbol} {side.lower()} fills",
                        text=[f"{f.side.value} {f.quantity} @ {f.price} ({f.client_order_id})" for f in mine],
                    ),
                    row=row, col=1,
                )  # fmt: skip
        marks = [s for s in stops if s.symbol == symbol]
        if marks:
            fig.add_trace(
                go.Scatter(
                    x=[_ts(s.time_ms) for s in marks], y=[s.price for s in marks], mode="markers",
                    marker={"symbol": "line-ew-open", "size": 14, "color": "#7570b3"}, name=f"{symbol} stops / take-profits",
                    text=[s.kind for s in marks],
                ),
                row=row, col=1,
            )  # fmt: skip
        fig.update_xaxes(rangeslider_visible=False, row=row, col=1)
    fig.add_trace(
        go.Scatter(x=[_ts(t) for t in equity_times], y=list(equity), mode="lines", name="equity", line={"color": "#2c7fb8"}),
        row=rows, col=1,
    )  # fmt: skip
    fig.update_layout(title=title, height=380 * rows, template="plotly_white", hovermode="x unified")
    table = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in summary.lines())
    body = fig.to_html(full_html=False, include_plotlyjs=True, div_id="aegis-report")  # no random id: reproducible
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}</style></head>"
        f"<body><h1>{title}</h1><table>{table}</table>{body}</body></html>",
        encoding="utf-8",
    )
    return path


def _bars(candles: Sequence[Candle]) -> list[tuple[int, float, float, float, float]]:
    """1-minute bars, or coarser ones (exactly aggregated) when there are more than MAX_BARS."""
    if not candles:
        return []
    span = max(1, -(-len(candles) // MAX_BARS))
    width = span * MINUTE_MS
    bars: list[tuple[int, float, float, float, float]] = []
    for c in candles:
        start = c.open_time_ms - c.open_time_ms % width
        o, h, lo, cl = float(c.open), float(c.high), float(c.low), float(c.close)
        if bars and bars[-1][0] == start:
            t, bo, bh, bl, _ = bars[-1]
            bars[-1] = (t, bo, max(bh, h), min(bl, lo), cl)
        else:
            bars.append((start, o, h, lo, cl))
    return bars


def _ts(ms: int) -> Any:
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
