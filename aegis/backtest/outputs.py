"""What a backtest leaves behind, byte for byte the same for the same inputs and seed.

In ``--report-dir``: ``summary.json`` (the run summary plus what was replayed), ``fills.csv`` (every
fill of ours, in exchange order), ``trades.csv`` (round trips: flat to flat) and ``report.html``
(the same HTML report as ``aegis run``). Every time in them is exchange time; names are fixed, so
a second run over the same inputs replaces the first with identical files.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from aegis.backtest.plan import BacktestPlan
from aegis.domain import Candle, Fill
from aegis.report.html import StopMark, write_html_report
from aegis.report.summary import RoundTrip, RunSummary

__all__ = ["Outputs", "write_outputs"]

FILL_COLUMNS = (
    "time", "time_ms", "symbol", "side", "quantity", "price", "commission", "commission_asset",
    "realized_pnl", "maker", "order_id", "trade_id", "client_order_id",
)  # fmt: skip
TRIP_COLUMNS = ("symbol", "side", "opened", "closed", "opened_ms", "closed_ms", "quantity", "pnl")


@dataclass(frozen=True, slots=True)
class Outputs:
    """Everything the files are made of, gathered while the engine's journal is still open."""

    plan: BacktestPlan
    summary: RunSummary
    fills: Sequence[Fill]
    trips: Sequence[RoundTrip]
    candles: dict[str, Sequence[Candle]]
    stops: Sequence[StopMark]
    equity_times: Sequence[int]
    equity: Sequence[float]


def stamp(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def write_outputs(out: Outputs, directory: Path) -> Path:
    """Write the four files; returns the HTML report's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.json").write_bytes(msgspec.json.format(msgspec.json.encode(_summary(out)), indent=2) + b"\n")
    (directory / "fills.csv").write_text(_csv(FILL_COLUMNS, [_fill_row(f) for f in out.fills]), encoding="utf-8")
    (directory / "trades.csv").write_text(_csv(TRIP_COLUMNS, [_trip_row(t) for t in out.trips]), encoding="utf-8")
    plan = out.plan
    title = f"aegis backtest, {plan.label()}"
    return write_html_report(
        directory / "report.html", out.summary, out.candles, out.fills, out.stops, out.equity_times, out.equity, title=title
    )


def _summary(out: Outputs) -> dict[str, Any]:
    plan = out.plan
    return {
        "backtest": {
            "symbols": list(plan.symbols),
            "from": stamp(plan.start_ms),
            "to": stamp(plan.end_ms),
            "from_ms": plan.start_ms,
            "to_ms": plan.end_ms,
            "candles_replayed": plan.candles,
            "warmup_candles": plan.warmup,
            "seed": plan.seed,
            "fill_model": plan.fill_model,
            "faults": str(plan.faults) if plan.faults else "none",
        },
        "summary": out.summary.to_builtins(),
    }


def _csv(columns: Sequence[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def _fill_row(f: Fill) -> list[Any]:
    return [
        stamp(f.time_ms), f.time_ms, f.symbol, f.side.value, f"{f.quantity:f}", f"{f.price:f}", f"{f.commission:f}",
        f.commission_asset, f"{f.realized_pnl:f}", int(f.maker), f.order_id, f.trade_id, f.client_order_id,
    ]  # fmt: skip


def _trip_row(t: RoundTrip) -> list[Any]:
    return [t.symbol, t.side, stamp(t.opened_ms), stamp(t.closed_ms), t.opened_ms, t.closed_ms, f"{t.quantity:f}", f"{t.pnl:f}"]
