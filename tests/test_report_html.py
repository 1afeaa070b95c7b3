"""The HTML report of a run on many symbols: one chart per symbol, whatever their number."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from aegis.domain import Candle
from aegis.report.html import write_html_report
from aegis.report.summary import RunSummary


def _candle(symbol: str) -> Candle:
    one = Decimal("1")
    return Candle(symbol, 0, one, one, one, one, one, 59_999, one, 1, one, one)


def test_a_report_on_fifty_symbols_charts_each(tmp_path: Path) -> None:
    # plotly refuses the spacing a few charts use once there are more than 17 of them
    symbols = [f"S{i:02d}USDT" for i in range(50)]
    zero = Decimal(0)
    summary = RunSummary(
        started_ms=0, ended_ms=60_000, symbols=tuple(symbols), candles=50, evaluations=0, intents=0, orders={},
        filled_orders=0, fills=0, rejections={}, refusals={}, reconcile_passes=0, reconcile_mismatches=0,
        realized_pnl=zero, unrealized_pnl=zero, fees=zero, funding=zero, start_equity=zero, end_equity=zero,
        max_drawdown=0.0, trades=0, win_rate=None, profit_factor=None, sharpe=None, sortino=None, exposure=None,
    )  # fmt: skip
    path = write_html_report(tmp_path / "report.html", summary, {s: [_candle(s)] for s in symbols}, [], [], [0], [0.0])
    html = path.read_text(encoding="utf-8")
    assert all(f'"text":"{s}"' in html for s in symbols)
