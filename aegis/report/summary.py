"""The end-of-run summary: what the engine did, what it cost, how the strategy fared.

The same figures for ``aegis run`` and ``aegis backtest``: candles, intents, orders by outcome,
rejections by Binance code (the target is none), reconciliation passes and mismatches, realized and
unrealized PnL, fees and funding, and the figures traders expect from a backtest: round trips, win
rate, profit factor, max drawdown, Sharpe and Sortino on daily returns, exposure.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import msgspec

from aegis.domain import ZERO, Fill

__all__ = ["RoundTrip", "RunSummary", "drawdown", "round_trips", "sharpe_sortino"]

DAY_MS = 86_400_000


class RoundTrip(msgspec.Struct, frozen=True):
    """A position from flat back to flat (or to a flip), with what it made after fees."""

    symbol: str
    side: str  # LONG or SHORT
    opened_ms: int
    closed_ms: int
    quantity: Decimal  # the largest size it reached
    pnl: Decimal  # realized PnL minus fees


class RunSummary(msgspec.Struct, frozen=True):
    started_ms: int
    ended_ms: int
    symbols: tuple[str, ...]
    candles: int
    evaluations: int
    intents: int
    orders: dict[str, int]  # by outcome: placed, refused, rejected...
    filled_orders: int
    fills: int
    rejections: dict[str, int]  # by Binance code
    refusals: dict[str, int]  # by filter or risk limit
    reconcile_passes: int
    reconcile_mismatches: int
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    funding: Decimal
    start_equity: Decimal
    end_equity: Decimal
    max_drawdown: float  # fraction of the peak
    trades: int
    win_rate: float | None
    profit_factor: float | None
    sharpe: float | None
    sortino: float | None
    exposure: float | None  # fraction of sampled minutes with a position open
    fill_model: str = ""
    final_check: str = ""  # "clean", the mismatches of the last reconciliation, or "not done"

    def to_builtins(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    def lines(self) -> list[tuple[str, str]]:
        """The summary as (label, value) rows for a terminal or a log."""
        rows = [
            ("candles processed", str(self.candles)),
            ("strategy evaluations / intents", f"{self.evaluations} / {self.intents}"),
            ("orders", ", ".join(f"{k} {v}" for k, v in sorted(self.orders.items())) or "none"),
            ("orders filled / fills", f"{self.filled_orders} / {self.fills}"),
            ("rejections by code", ", ".join(f"{k}: {v}" for k, v in sorted(self.rejections.items())) or "0"),
            ("refused (filters, risk)", ", ".join(f"{k}: {v}" for k, v in sorted(self.refusals.items())) or "0"),
            ("reconcile passes / mismatches", f"{self.reconcile_passes} / {self.reconcile_mismatches}"),
            ("realized PnL", f"{self.realized_pnl:f}"),
            ("unrealized PnL", f"{self.unrealized_pnl:f}"),
            ("fees / funding", f"{self.fees:f} / {self.funding:f}"),
            ("equity start -> end", f"{self.start_equity:.2f} -> {self.end_equity:.2f}"),
            ("max drawdown", pct(self.max_drawdown)),
            ("round trips / win rate", f"{self.trades} / {pct(self.win_rate)}"),
            ("profit factor", num(self.profit_factor)),
            ("Sharpe / Sortino (daily)", f"{num(self.sharpe)} / {num(self.sortino)}"),
            ("exposure", pct(self.exposure)),
        ]
        if self.fill_model:
            rows.append(("fill model", self.fill_model))
        rows.append(("final check against the exchange", self.final_check or "not done"))
        return rows


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def round_trips(fills: Iterable[Fill]) -> list[RoundTrip]:
    """Round trips per symbol, from fills in time order."""
    out: list[RoundTrip] = []
    by_symbol: dict[str, list[Fill]] = defaultdict(list)
    for fill in fills:
        by_symbol[fill.symbol].append(fill)
    for symbol, items in by_symbol.items():
        items.sort(key=lambda f: (f.time_ms, f.trade_id))
        position, pnl, opened, peak = ZERO, ZERO, 0, ZERO
        for fill in items:
            if position == 0:
                opened, pnl, peak = fill.time_ms, ZERO, ZERO
            before = position
            position += fill.side.sign * fill.quantity
            pnl += fill.realized_pnl - (fill.commission if fill.commission_asset in ("USDT", "") else ZERO)
            peak = max(peak, abs(position))
            if position == 0 or (before != 0 and (position > 0) != (before > 0)):
                out.append(RoundTrip(symbol, "LONG" if before > 0 else "SHORT", opened, fill.time_ms, peak, pnl))
                opened, pnl, peak = fill.time_ms, ZERO, abs(position)
    return sorted(out, key=lambda t: t.closed_ms)


def drawdown(equity: Sequence[float]) -> float:
    """The largest fall from a peak, as a fraction of that peak."""
    peak, worst = -math.inf, 0.0
    for value in equity:
        peak = max(peak, value)
        if peak > 0:
            worst = max(worst, (peak - value) / peak)
    return worst


def sharpe_sortino(times: Sequence[int], equity: Sequence[float]) -> tuple[float | None, float | None]:
    """Annualised (365 days) Sharpe and Sortino ratios of daily returns; None with fewer than 2."""
    closes: dict[int, float] = {}
    for t, value in zip(times, equity, strict=True):
        closes[t // DAY_MS] = value
    days = [closes[d] for d in sorted(closes)]
    returns = [b / a - 1 for a, b in itertools.pairwise(days) if a > 0]
    if len(returns) < 2:
        return None, None
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    scale = math.sqrt(365)
    sharpe = mean / std * scale if std > 0 else None
    sortino = mean / downside * scale if downside > 0 else None
    return sharpe, sortino
