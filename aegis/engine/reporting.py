"""What a run shows: the live terminal view's data, the end-of-run summary and the HTML report."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from aegis.domain import ZERO, Candle
from aegis.ops.console import SymbolRow, ViewData
from aegis.report.html import StopMark, write_html_report
from aegis.report.summary import RunSummary, drawdown, round_trips, sharpe_sortino
from aegis.trading.clientid import is_ours, leg_of
from aegis.trading.intents import Outcome

if TYPE_CHECKING:
    from aegis.engine.engine import Engine

__all__ = ["print_summary", "summarize", "view_data", "write_report"]


def view_data(engine: Engine) -> ViewData:
    state, trader, market = engine.state, engine.trader, engine.market
    rows = []
    for symbol in engine.settings.symbols:
        last = state.tail(symbol, 1)
        position = state.position(symbol)
        close = last[0].close if last else None
        unrealized = position.amount * (close - position.entry_price) if position and close is not None else ZERO
        stops = [a for a in state.open_algo_orders(symbol) if is_ours(a.client_algo_id)]
        rows.append(
            SymbolRow(
                symbol,
                last[0].open_time_ms if last else None,
                f"{close:f}" if close is not None else "-",
                f"{position.amount:f} @ {position.entry_price:f}" if position else "flat",
                f"{unrealized:.2f}",
                len([o for o in state.open_orders(symbol) if is_ours(o.client_order_id)]),
                ", ".join(f"{a.type.value.split('_')[0].lower()} {a.trigger_price:f}" for a in stops) or "-",
            )
        )
    equity = engine.recorder.current()[0] if engine.recorder else ZERO
    streams = state.snapshot().streams
    user = streams.get("user", {})
    rec = engine.reconciler
    report = rec.last_report if rec else None
    warm = "" if market is None or market.view.warm_done else f"{market.view.warmup_share():.0%}"
    o = trader.orders if trader else None
    return ViewData(
        clock_ms=engine.clock.now_ms(),
        warmup=warm,
        equity=f"{equity:.2f}",
        realized=f"{trader.ledger.realized_total:.2f}" if trader else "-",
        fees=f"{trader.ledger.fees_total:.2f}" if trader else "-",
        streams=f"market {'up' if market and not market.problems() else 'DOWN'}, user {'up' if user.get('connected') else 'DOWN'}",
        reconcile=("-" if report is None else "clean" if report.clean else f"{len(report.findings)} mismatch(es)")
        + (f" ({rec.runs} passes)" if rec else ""),
        orders="-" if o is None else f"placed {o.outcomes[Outcome.PLACED]}, refused {o.outcomes[Outcome.REFUSED]}",
        rejections="-" if o is None else (", ".join(f"{c}: {n}" for c, n in sorted(o.rejections.items())) or "0"),
        alerts=engine.ops.problems(),
        rows=rows,
    )


async def summarize(engine: Engine) -> RunSummary:
    """The run's figures (reads the journal; asks the exchange for funding if it answers)."""
    trader, rec, runner, market = engine.trader, engine.reconciler, engine.runner, engine.market
    fills = await engine.journal.fills() if engine.journal else []
    ours = [f for f in fills if is_ours(f.client_order_id)]
    trips = round_trips(ours)
    wins = [t for t in trips if t.pnl > 0]
    gross_win = sum((t.pnl for t in wins), ZERO)
    gross_loss = -sum((t.pnl for t in trips if t.pnl < 0), ZERO)
    funding = await _funding(engine)
    recorder = engine.recorder
    equity, exposed = (list(recorder.equity), list(recorder.exposed)) if recorder else ([], [])
    end_equity, _ = recorder.current() if recorder else (ZERO, 0)
    sharpe, sortino = sharpe_sortino(list(recorder.times), equity) if recorder else (None, None)
    wallet = engine.state.balance("USDT")
    unrealized = end_equity - (wallet.wallet_balance if wallet is not None else ZERO)
    o = trader.orders if trader else None
    return RunSummary(
        started_ms=engine.started_ms,
        ended_ms=engine.clock.now_ms(),
        symbols=tuple(engine.settings.symbols),
        candles=market.status().get("closed", 0) if market else 0,  # type: ignore[arg-type]
        evaluations=runner.evaluations if runner else 0,
        intents=runner.intents if runner else 0,
        orders={str(k): v for k, v in o.outcomes.items()} if o else {},
        filled_orders=len({(f.symbol, f.order_id) for f in ours}),
        fills=len(ours),
        rejections={str(k): v for k, v in o.rejections.items()} if o else {},
        refusals=dict(o.refusals) if o else {},
        reconcile_passes=rec.runs if rec else 0,
        reconcile_mismatches=rec.corrections if rec else 0,
        realized_pnl=sum((f.realized_pnl for f in ours), ZERO),
        unrealized_pnl=unrealized,
        fees=sum((f.commission for f in ours if f.commission_asset in ("USDT", "")), ZERO),
        funding=funding,
        start_equity=recorder.start_equity if recorder and recorder.start_equity is not None else end_equity,
        end_equity=end_equity,
        max_drawdown=drawdown(equity),
        trades=len(trips),
        win_rate=len(wins) / len(trips) if trips else None,
        profit_factor=float(gross_win / gross_loss) if gross_loss > 0 else None,
        sharpe=sharpe,
        sortino=sortino,
        exposure=sum(exposed) / len(exposed) if exposed else None,
        fill_model=engine.fill_model,
        final_check=_final(engine),
    )


def _final(engine: Engine) -> str:
    report = engine.final_check
    if report is None:
        return "not done"
    if report.error is not None:
        return f"failed: {report.error}"
    return "clean" if report.clean else "; ".join(f.line() for f in report.findings)


async def _funding(engine: Engine) -> Decimal:
    if engine.rest is None:
        return ZERO
    try:
        rows = await engine.rest.income(income_type="FUNDING_FEE", start_ms=engine.started_ms)
    except Exception as exc:  # the exchange may be gone at shutdown: the summary says 0 and why
        logger.warning("funding for the summary could not be read: {}", exc)
        return ZERO
    return sum((r.amount for r in rows), ZERO)


def print_summary(summary: RunSummary) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="aegis run summary", show_header=False)
    for label, value in summary.lines():
        table.add_row(label, value)
    Console(stderr=True).print(table)


async def write_report(engine: Engine, summary: RunSummary, directory: Path) -> Path | None:
    """The HTML report of the run (price, fills, stops, equity); None if there is nothing to chart."""
    if engine.recorder is None or not engine.recorder.times or engine.journal is None:
        return None
    stamp = datetime.datetime.fromtimestamp(engine.clock.now_ms() / 1000, datetime.UTC).strftime("%Y%m%d-%H%M%S")
    path = directory / f"aegis-{engine.settings.profile}-{stamp}.html"
    start = engine.recorder.times[0]
    candles: dict[str, Sequence[Candle]] = {
        s: [c for c in engine.state.candles(s) if c.open_time_ms >= start] for s in engine.settings.symbols
    }
    fills = [f for f in await engine.journal.fills() if is_ours(f.client_order_id)]
    stops = [
        StopMark(i.symbol, i.created_ms, float(i.request["trigger_price"]), leg_of(i.client_id) or "stop")
        for i in await engine.journal.intents(algo=True)
        if i.request.get("trigger_price")
    ]
    times, equity = list(engine.recorder.times), list(engine.recorder.equity)
    title = f"aegis {engine.settings.profile} run, {', '.join(engine.settings.symbols)}"

    def write() -> Path:  # plotly renders and the file is written off the event loop
        directory.mkdir(parents=True, exist_ok=True)
        return write_html_report(path, summary, candles, fills, stops, times, equity, title=title)

    return await asyncio.to_thread(write)
