"""The price chart of a whole backtest in constant memory: bars aggregated as candles arrive.

The engine's store keeps only the newest ``market.max_candles`` candles, and keeping every candle
of a month of ten symbols would grow with the run; the HTML report shows at most ``MAX_BARS`` bars
per symbol anyway. So each replayed candle is folded into its bar (first open, max high, min low,
last close) when it is stored, at the width that fits the whole span in ``MAX_BARS`` bars.
"""

from __future__ import annotations

from decimal import Decimal

from aegis.domain import MINUTE_MS, ZERO, Candle
from aegis.report.html import MAX_BARS
from aegis.state import StateStore

__all__ = ["ChartBars"]

Bar = list[float]  # [open_ms, open, high, low, close]


class ChartBars:
    def __init__(self, state: StateStore, start_ms: int, end_ms: int) -> None:
        self._state = state
        self._start = start_ms
        minutes = max(1, (end_ms - start_ms) // MINUTE_MS)
        self.width_ms = max(1, -(-minutes // MAX_BARS)) * MINUTE_MS
        self._bars: dict[str, list[Bar]] = {}
        self._seen: dict[str, int] = {}

    def candle(self, symbol: str, open_ms: int) -> None:
        """A MarketFeed listener: fold every candle stored since the last call (gap fills included)."""
        seen = self._seen.get(symbol, self._start - MINUTE_MS)
        if open_ms <= seen:
            return
        count = min((open_ms - seen) // MINUTE_MS, 10_000)
        series = self._state.series(symbol)
        bars = self._bars.setdefault(symbol, [])
        for t, o, h, lo, cl in series.tail_prices(count) if series is not None else ():
            if t <= seen or t < self._start:
                continue
            start = t - (t - self._start) % self.width_ms
            if bars and bars[-1][0] == start:
                bar = bars[-1]
                bar[2], bar[3], bar[4] = max(bar[2], h), min(bar[3], lo), cl
            else:
                bars.append([start, o, h, lo, cl])
        self._seen[symbol] = open_ms

    def candles(self, symbol: str) -> list[Candle]:
        """The bars as candles for the HTML report (one per bar, at the bar's open time)."""
        return [
            Candle(symbol, int(t), _d(o), _d(h), _d(lo), _d(cl), ZERO, int(t) + self.width_ms - 1, ZERO, 0, ZERO, ZERO)
            for t, o, h, lo, cl in self._bars.get(symbol, [])
        ]


def _d(value: float) -> Decimal:
    return Decimal(repr(value))
