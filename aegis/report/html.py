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

__all__ = ["MAX_BARS", "TEMPLATE_PATH", "StopMark", "write_html_report"]

MAX_BARS = 3000
TEMPLATE_PATH = Path(__file__).parent / "data" / "plotly_white.json"


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
    import plotly.io as pio

    symbols = list(candles)
    rows = len(symbols) + 1
    data: list[dict[str, Any]] = []
    for row, symbol in enumerate(symbols, start=1):
        data += _symbol_traces(symbol, _axes(row), candles[symbol], fills, stops)
    line = {"color": "#2c7fb8"}
    equity_x = [_ts(t) for t in equity_times]
    data.append(_scatter("lines", "equity", equity_x, list(equity), _axes(rows), line=line))
    table = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in summary.lines())
    # The figure as plain dicts, unvalidated: building it from plotly's objects (importing them,
    # checking and copying every point) took most of the report's 0.4-0.5 s. Same JSON as
    # make_subplots, go.Candlestick and go.Scatter give (tests/test_report_html.py compares).
    figure = {"data": data, "layout": _layout(symbols, title)}
    body = pio.to_html(figure, validate=False, full_html=False, include_plotlyjs=True, div_id="aegis-report")  # no random id: reproducible
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}</style></head>"
        f"<body><h1>{title}</h1><table>{table}</table>{body}</body></html>",
        encoding="utf-8",
    )
    return path


def _layout(symbols: list[str], title: str) -> dict[str, Any]:
    """What make_subplots(rows, 1, row_heights=[1, ..., 1, 0.6], subplot_titles=...) builds, then
    rangeslider off on the price charts, the title, the height, plotly_white and unified hover."""
    rows = len(symbols) + 1
    spacing = min(0.06, 0.5 / rows)  # plotly refuses more than 1 / (rows - 1): 50 symbols need less
    relative = [*([1.0] * len(symbols)), 0.6]
    total = float(sum(relative))
    heights = [(1.0 - spacing * (rows - 1)) * (h / total) for h in reversed(relative)]  # bottom row first
    layout: dict[str, Any] = {"template": _template()}
    titles: list[dict[str, Any]] = []
    for r, text in enumerate([*symbols, "equity"]):  # r = 0: the top row
        below = rows - 1 - r
        start = sum(heights[:below]) + below * spacing
        bottom, top = (min(max(v, 0.0), 1.0) for v in (start, start + heights[below]))
        n = str(r + 1) if r else ""
        xaxis: dict[str, Any] = {"anchor": f"y{n}", "domain": [0.0, 1.0]}
        if r < rows - 1:
            xaxis["rangeslider"] = {"visible": False}
        layout[f"xaxis{n}"], layout[f"yaxis{n}"] = xaxis, {"anchor": f"x{n}", "domain": [bottom, top]}
        titles.append({
            "font": {"size": 16}, "showarrow": False, "text": text, "x": 0.5, "xanchor": "center",
            "xref": "paper", "y": top, "yanchor": "bottom", "yref": "paper",
        })  # fmt: skip
    layout["annotations"] = titles
    layout.update(title={"text": title}, height=380 * rows, hovermode="x unified")
    return layout


def _template() -> dict[str, Any]:
    """plotly's plotly_white as plotly writes it into a figure (data/SOURCES.md)."""
    import json

    template: dict[str, Any] = json.loads(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return template


def _axes(row: int) -> dict[str, str]:
    suffix = "" if row == 1 else str(row)
    return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def _symbol_traces(
    symbol: str, axes: dict[str, str], candles: Sequence[Candle], fills: Sequence[Fill], stops: Sequence[StopMark]
) -> list[dict[str, Any]]:
    """The symbol's candlesticks, its buy and sell fills and its stops (keys in plotly's order)."""
    bars = _bars(candles)
    traces: list[dict[str, Any]] = [{
        "close": [b[4] for b in bars], "high": [b[2] for b in bars], "low": [b[3] for b in bars], "name": symbol,
        "open": [b[1] for b in bars], "showlegend": False, "x": [_ts(t) for t, *_ in bars], "type": "candlestick", **axes,
    }]  # fmt: skip
    for side, color, shape in (("BUY", "#1a9850", "triangle-up"), ("SELL", "#d73027", "triangle-down")):
        mine = [f for f in fills if f.symbol == symbol and f.side.value == side]
        if mine:
            traces.append(_scatter(
                "markers", f"{symbol} {side.lower()} fills", [_ts(f.time_ms) for f in mine], [float(f.price) for f in mine],
                axes, marker={"color": color, "size": 10, "symbol": shape},
                text=[f"{f.side.value} {f.quantity} @ {f.price} ({f.client_order_id})" for f in mine],
            ))  # fmt: skip
    marks = [s for s in stops if s.symbol == symbol]
    if marks:
        traces.append(_scatter(
            "markers", f"{symbol} stops / take-profits", [_ts(s.time_ms) for s in marks], [s.price for s in marks],
            axes, marker={"color": "#7570b3", "size": 14, "symbol": "line-ew-open"}, text=[s.kind for s in marks],
        ))  # fmt: skip
    return traces


def _scatter(
    mode: str, name: str, x: list[str], y: list[float], axes: dict[str, str],
    *, line: dict[str, Any] | None = None, marker: dict[str, Any] | None = None, text: list[str] | None = None,
) -> dict[str, Any]:
    """A scatter trace as go.Scatter(...).to_plotly_json() writes it: its keys in alphabetical order, then type and axes."""
    trace: dict[str, Any] = {}
    if line is not None:
        trace["line"] = line
    if marker is not None:
        trace["marker"] = marker
    trace["mode"], trace["name"] = mode, name
    if text is not None:
        trace["text"] = text
    return {**trace, "x": x, "y": y, "type": "scatter", **axes}


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


def _ts(ms: int) -> str:
    """The time as plotly writes a datetime: ISO 8601 with the UTC offset."""
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()
