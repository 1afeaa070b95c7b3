"""The live engine, as it runs in a backtest: the same parts, with the cadences a replay needs.

Nothing of the order path changes. What changes is how often work that nobody watches runs: on
virtual time every timer that fires is a jump of the clock and a turn of the loop, and a month
of exchange time holds 43,200 minutes. So the /state refreshes of the user stream and the safety
net of the protective orders (both woken by events anyway) run once a minute instead of every few
seconds (hourly without faults), and the server-time resync once an hour (the simulator
shares the engine's clock). At the end the backtest's files are written while the journal is still open.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from aegis.backtest.chart import ChartBars
from aegis.backtest.outputs import Outputs, write_outputs
from aegis.backtest.plan import BacktestPlan
from aegis.backtest.progress import Progress
from aegis.engine import Engine
from aegis.report.html import StopMark
from aegis.report.summary import round_trips
from aegis.trading.clientid import is_ours, leg_of

if TYPE_CHECKING:
    from aegis.binance import BinanceRest, ExchangeInfo
    from aegis.config import Endpoints, Settings
    from aegis.strategy.api import Strategy
    from aegis.trading.journal import Journal
from aegis.trading.trader import Trader

__all__ = ["BacktestEngine"]

# User stream supervisor tick (Engine default: 10 s): it refreshes /state, which nobody reads in a
# backtest, and looks at what is due. Without faults nothing is due between its own deadlines
# (rotation, silence, key renewal all wake it); hourly it was a wake-up per minute less, and the
# reports are byte-identical. With faults a lost connection or key is retried on the tick, so the
# minute stays: the same seed must replay the same recovery.
STATUS_REFRESH_S = 3600.0
FAULTS_STATUS_REFRESH_S = 60.0
# Protective orders' periodic check (Engine default 5 s). Fills and orders wake it; without faults
# nothing is missed, so hourly spares a timer and a wake-up per minute (the reports are byte-identical
# to the minute's). With faults a lost event or a failed placement waits for the tick: the minute stays.
PROTECTION_CHECK_S = 3600.0
FAULTS_PROTECTION_CHECK_S = 60.0
SERVER_CLOCK_REFRESH_S = 3600.0  # server-time resync (default 300 s)


class BacktestEngine(Engine):
    def __init__(
        self, settings: Settings, strategy: Strategy, plan: BacktestPlan, progress: Progress, report_dir: Path, fill_model: str
    ) -> None:
        super().__init__(settings, strategy=strategy)
        self.plan = plan
        self.progress = progress
        self.outputs_dir = report_dir
        self.fill_model = fill_model
        self.chart = ChartBars(self.state, plan.start_ms, plan.end_ms)

    def _build_tasks(self, rest: BinanceRest, urls: Endpoints, journal: Journal) -> None:
        super()._build_tasks(rest, urls, journal)
        assert self.market is not None and self.user is not None
        self.user.tick_s = STATUS_REFRESH_S if self.plan.faults is None else FAULTS_STATUS_REFRESH_S
        rest.server_clock.refresh_interval_s = SERVER_CLOCK_REFRESH_S
        self.market.add_listener(self.chart.candle)
        self.market.add_listener(self.progress.candle)

    def _build_trader(self, rest: BinanceRest, info: ExchangeInfo) -> Trader:
        trader = super()._build_trader(rest, info)
        trader.protection.check_s = PROTECTION_CHECK_S if self.plan.faults is None else FAULTS_PROTECTION_CHECK_S
        return trader

    async def _report(self, left_s: float) -> None:
        """The summary (logged by the engine), then the backtest's files."""
        await super()._report(left_s)
        if self.summary is None or self.journal is None or self.recorder is None:
            return
        fills = [f for f in await self.journal.fills() if is_ours(f.client_order_id)]
        stops = [
            StopMark(i.symbol, i.created_ms, float(i.request["trigger_price"]), leg_of(i.client_id) or "stop")
            for i in await self.journal.intents(algo=True)
            if i.request.get("trigger_price")
        ]
        outputs = Outputs(
            plan=self.plan,
            summary=self.summary,
            fills=fills,
            trips=round_trips(fills),
            candles={s: self.chart.candles(s) for s in self.plan.symbols},
            stops=stops,
            equity_times=list(self.recorder.times),
            equity=list(self.recorder.equity),
        )
        self.report_path = write_outputs(outputs, self.outputs_dir)
        logger.info("backtest report: {}", self.report_path.resolve())
