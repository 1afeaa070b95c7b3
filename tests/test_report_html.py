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


def test_the_report_embeds_the_installed_plotly_white_template() -> None:
    # The template is shipped as a file (building it through plotly's objects costs 0.2 s a report):
    # a plotly upgrade that changes it must refresh the file (see aegis/report/data/SOURCES.md).
    import json

    import plotly.graph_objects as go
    from plotly.io.json import to_json_plotly

    from aegis.report.html import TEMPLATE_PATH

    installed = go.Figure(layout={"template": "plotly_white"}).to_plotly_json()["layout"]["template"]
    assert to_json_plotly(json.loads(TEMPLATE_PATH.read_text(encoding="utf-8"))) == to_json_plotly(installed)


def test_the_report_lays_out_its_charts_as_plotly_make_subplots_does() -> None:
    from plotly.io.json import to_json_plotly
    from plotly.subplots import make_subplots

    from aegis.report.html import _layout

    for count in (0, 1, 2, 10, 17, 18, 50):
        symbols = [f"S{i:02d}USDT" for i in range(count)]
        rows = count + 1
        fig = make_subplots(
            rows=rows, cols=1, shared_xaxes=False, vertical_spacing=min(0.06, 0.5 / rows),
            subplot_titles=[*symbols, "equity"], row_heights=[*([1.0] * count), 0.6],
        )  # fmt: skip
        for row in range(1, rows):
            fig.update_xaxes(rangeslider_visible=False, row=row, col=1)
        fig.update_layout(title="a run", height=380 * rows, template="plotly_white", hovermode="x unified")
        assert to_json_plotly(_layout(symbols, "a run")) == to_json_plotly(fig.to_plotly_json()["layout"]), count
