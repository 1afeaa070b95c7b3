"""The engine: builds its parts from Settings, starts them against the exchange, runs, shuts down.

SIGTERM and SIGINT start a graceful shutdown bounded by ``engine.shutdown_timeout_s``; during
start-up they stop it at once. Exit codes (aegis.exitcodes): 0 after a clean stop, 1 when a
critical task died or the exchange stayed unreachable, 2 for a configuration the exchange refuses,
3 when Binance refuses the API key (at start-up or later), 130 when interrupted before it was up.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from aegis.account.stream import UserStream
from aegis.binance import AuthError, BinanceRest, ExchangeInfo
from aegis.clock import Clock
from aegis.domain import MINUTE_MS
from aegis.engine import reporting
from aegis.engine.simulator import follow_sim_clock, start_embedded_sim
from aegis.engine.startup import (
    AuthFailure,
    ExchangeUnreachable,
    StartupError,
    auth_advice,
    wait_for_exchange,
)
from aegis.exitcodes import EXIT_AUTH, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from aegis.market.feed import MarketFeed
from aegis.ops.alerts import Alerts
from aegis.ops.console import LiveView
from aegis.ops.latency import settle_heap
from aegis.ops.metrics import EngineMetrics
from aegis.ops.server import OpsServer
from aegis.reconcile.fills import missed_fills
from aegis.reconcile.once import ENGINE_RECORD
from aegis.reconcile.pnl import PnlAuditor
from aegis.reconcile.reconciler import Reconciler
from aegis.reconcile.report import Report
from aegis.reconcile.requests import ReconcileRequests
from aegis.report.recorder import EquityRecorder
from aegis.report.summary import RunSummary
from aegis.state import StateStore
from aegis.strategy.api import Strategy
from aegis.strategy.runner import StrategyRunner
from aegis.supervisor import Supervisor
from aegis.trading.clientid import is_ours
from aegis.trading.deadman import heartbeat
from aegis.trading.filters import FilterBook
from aegis.trading.journal import Journal, open_journal
from aegis.trading.trader import Trader

if TYPE_CHECKING:
    from aegis.config import Endpoints, Settings

__all__ = ["Engine"]


class Engine:
    def __init__(
        self,
        settings: Settings,
        *,
        dry_run: bool = False,
        strategy: Strategy | None = None,
        view: bool = False,
        report_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.dry_run = dry_run
        self.strategy = strategy
        self.view = view
        self.report_dir = report_dir
        self.runner: StrategyRunner | None = None
        self.recorder: EquityRecorder | None = None
        self.summary: RunSummary | None = None
        self.report_path: Path | None = None
        self.fill_model = ""
        self.final_check: Report | None = None
        # Exchange time: a simulator's clock and speed are adopted at start-up (started_ms with them).
        self.clock = Clock()
        self.state = StateStore(max_candles=settings.market.max_candles)
        self.supervisor = Supervisor(
            self.clock,
            backoff_initial_s=settings.engine.restart_backoff_initial_s,
            backoff_max_s=settings.engine.restart_backoff_max_s,
        )
        self.metrics = EngineMetrics(self)  # GET /metrics; the loop-lag and clock-offset health checks
        self.ops = OpsServer(
            self.state,
            problems=[self.supervisor.problems, self.metrics.problems],
            extra_state=self._engine_state,
            host=settings.ops.host,
            port=settings.ops.port,
            metrics=self.metrics.render,
        )
        self.urls: Endpoints | None = None
        self.rest: BinanceRest | None = None
        self.market: MarketFeed | None = None
        self.user: UserStream | None = None
        self.reconciler: Reconciler | None = None
        self.filters: FilterBook | None = None
        self.journal: Journal | None = None
        self.trader: Trader | None = None
        self.reconcile_requests = ReconcileRequests(self.clock.now_ms)
        self._sim: Any = None
        self.started_ms = self.clock.now_ms()
        self._stop = asyncio.Event()
        self._exit_code = EXIT_OK
        self.alerts = Alerts(settings.alerts.urls, repeat_after_s=settings.alerts.repeat_after_s)

    def kill(self, reason: str) -> None:
        """SIGUSR1 and the like: engage the kill switch (no effect before trading is set up)."""
        if self.trader is not None:
            if not self.trader.risk.kill.engaged:
                self.alerts.send("kill", "kill switch engaged", reason, "failure")
            self.trader.kill(reason)
        else:
            logger.warning("kill switch ({}) ignored: trading is not set up yet", reason)

    def request_stop(self, reason: str, code: int = EXIT_OK) -> None:
        if not self._stop.is_set():
            logger.info("shutdown requested: {}", reason)
            self._exit_code = code
            self._stop.set()
            if code != EXIT_OK:
                self.alerts.send("fatal", "engine stopping", f"{reason} (exit {code})", "failure")

    async def run(self, run_for_s: float | None = None) -> int:
        """Start everything, wait for a stop signal, a fatal task or ``run_for_s`` loop seconds, stop."""
        code = await self._start_or_stop()
        if code is not None:
            await self._shutdown()
            return code
        code = await self._wait(run_for_s)
        if code != EXIT_OK:
            self.alerts.send("fatal", "engine stopping", f"exit {code}: see the log", "failure")
        clean = await self._shutdown()
        gc.unfreeze()  # a process that goes on (a test, a backtest's report) collects them again
        return code if clean or code != EXIT_OK else EXIT_FAILED

    async def _start_or_stop(self) -> int | None:
        """Start-up, interruptible at once by a signal; None when the engine is up, else the exit code."""
        starting = asyncio.ensure_future(self._start())
        stopping = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait((starting, stopping), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            logger.warning("interrupted during start-up")
            return EXIT_INTERRUPTED if self._exit_code == EXIT_OK else self._exit_code
        try:
            starting.result()
        except AuthFailure as exc:
            logger.error("{}", exc)
            return EXIT_AUTH
        except StartupError as exc:
            logger.error("cannot start: {}", exc)
            return EXIT_USAGE
        except ExchangeUnreachable as exc:
            logger.error("cannot start: {}", exc)
            return EXIT_FAILED
        except Exception as exc:
            logger.opt(exception=exc).error("engine failed to start")
            return EXIT_FAILED
        return None

    async def _start(self) -> None:
        self.urls = await self._exchange_urls()
        self.started_ms = self.clock.now_ms()
        logger.info("profile {}: REST {} WS {}", self.settings.profile, self.urls.rest_url, self.urls.ws_url)
        self.rest = self._build_rest(self.urls)
        info = await wait_for_exchange(
            self.rest,
            self.settings.symbols,
            url=self.urls.rest_url,
            timeout_s=self.settings.engine.startup_timeout_s,
        )
        self.rest.transport.on_auth_error = self._on_auth_error
        self.started_ms = self.rest.server_clock.now_ms()  # exchange time: income and fills are stamped in it
        self.journal = await open_journal(self._journal_path(), self.settings.journal.durability)
        self._build_tasks(self.rest, self.urls, self.journal)
        self.reconciler.catch_up = await missed_fills(self.rest, self.state, self.settings.symbols, self.journal)  # type: ignore[union-attr]
        self.trader = self._build_trader(self.rest, info)
        self.metrics.attach()
        await self._start_ops()
        await self.journal.record_report(
            ENGINE_RECORD, self.clock.now_ms(), {"pid": os.getpid(), "ops_url": f"http://{self.settings.ops.host}:{self.ops.bound_port}"}
        )
        assert self.market is not None and self.user is not None and self.reconciler is not None
        self.supervisor.spawn("market", self.market.run, critical=True)
        self.supervisor.spawn("user", self.user.run, critical=True)
        self.supervisor.spawn("reconcile", self.reconciler.run)
        self.supervisor.spawn("trading-start", self._trading_start)  # retried with backoff if it fails
        self.supervisor.spawn("loop-lag", self.metrics.loop_lag.run)
        if self.runner is not None:
            self.supervisor.spawn("strategy", self.runner.run)
        if self.view:
            self._live_view = LiveView(lambda: reporting.view_data(self))
            self.supervisor.spawn("view", self._live_view.run)
        if self.alerts.enabled:
            self.supervisor.spawn("alerts", self.alerts.run)
            after_s = self.settings.alerts.problem_after_s
            self.supervisor.spawn("health-alerts", lambda: self.alerts.watch(self.ops.problems, after_s, self.clock))

    def _build_tasks(self, rest: BinanceRest, urls: Endpoints, journal: Journal) -> None:
        settings = self.settings
        self.market = MarketFeed(settings.market, settings.symbols, rest, urls.ws_url, self.state, self.clock)
        self.user = UserStream.from_settings(
            settings.userstream, rest, urls.ws_url, self.state, self.clock, reconcile=self.reconcile_requests
        )
        self.pnl = PnlAuditor(rest, journal, settings.reconcile.pnl_tolerance, self.started_ms)
        self.reconciler = Reconciler(
            rest,
            rest.server_clock,
            self.state,
            self.reconcile_requests,
            self.clock,
            settings.reconcile,
            symbols=settings.symbols,
            is_ours=is_ours,
            halt=self._halt,
            on_report=self._record_report,
            pnl=self.pnl,
        )
        for source in (rest.problems, self.market.problems, self.user.problems, self.reconciler.problems):
            self.ops.add_problem_source(source)

    def _halt(self, reason: str) -> None:
        if self.trader is not None and self.trader.risk.halt.engage(reason):
            self.alerts.send("halt", "trading halted", f"{reason}; DELETE /halt on the ops endpoint resumes", "failure")

    async def _record_report(self, report: Report) -> None:
        if self.journal is not None and (not report.clean or report.reason != "periodic"):
            await self.journal.record_report("reconcile", report.at_ms, report.to_builtins())
        if report.error is None and not report.clean:
            subject = ",".join(sorted(f"{f.kind}:{f.key}" for f in report.findings))
            body = "\n".join([report.summary(), *(f.line() for f in report.findings), *report.pnl])
            self.alerts.send(f"reconcile:{subject}", "reconciliation mismatch", body)

    async def _reconcile_now(self) -> dict[str, Any]:
        assert self.reconciler is not None
        report = await self.reconciler.pass_now("ops", "POST /reconcile")
        return {**report.to_builtins(), "pnl_symbols": self.pnl.last.lines() if self.pnl.last else []}

    def _build_trader(self, rest: BinanceRest, info: ExchangeInfo) -> Trader:
        assert self.market is not None
        settings = self.settings
        self.filters = FilterBook(rest, self.clock, refresh_s=settings.orders.filters_refresh_s)
        self.filters.adopt(info)
        assert self.journal is not None
        trader = Trader(
            rest, self.filters, self.state, self.journal, self.clock, self.market.last_price,
            settings.orders, settings.risk, dry_run=self.dry_run, reconcile=self.reconcile_requests,
        )  # fmt: skip
        self.ops.add_problem_source(trader.problems)
        self.recorder = EquityRecorder(self.state)
        self.market.add_listener(lambda _symbol, open_ms: self.recorder.sample_soon(open_ms + MINUTE_MS) if self.recorder else None)
        if self.strategy is not None:
            self.runner = StrategyRunner(self.strategy, self.market, self.state, trader, self.clock)
            logger.info("strategy {} ({})", self.strategy.name, type(self.strategy).__module__)
        self.ops.add_action("POST", "/kill", lambda: _kill(self, "ops endpoint POST /kill"))
        self.ops.add_action("DELETE", "/kill", lambda: {"cleared": trader.clear_kill("ops endpoint DELETE /kill")})
        self.ops.add_action("DELETE", "/halt", lambda: {"cleared": trader.risk.halt.clear("ops endpoint DELETE /halt")})
        self.ops.add_action("POST", "/reconcile", self._reconcile_now)
        return trader

    async def _trading_start(self) -> None:
        """No order before the first clean reconciliation pass and the journal's in-flight orders are
        resolved; then the trading side's tasks run."""
        assert self.reconciler is not None and self.trader is not None and self.rest is not None
        trader, rest = self.trader, self.rest
        while self.reconciler.runs == 0:
            await self.clock.sleep(0.5)
        await self._cap_leverage(rest)
        await trader.recover()
        logger.debug("{} objects alive at trading-ready left out of future collections", settle_heap())
        logger.info("trading ready{}", " (dry run: orders are sized, checked and journaled, never sent)" if self.dry_run else "")
        assert self.filters is not None
        self.supervisor.spawn("ledger", trader.ledger.run)
        self.supervisor.spawn("protection", trader.protection.run)
        self.supervisor.spawn("filters", self.filters.run)
        kill_file = self.settings.risk.kill_switch_file
        if kill_file is not None:
            self.supervisor.spawn("kill-file", lambda: trader.watch_kill_file(kill_file))
        countdown_s = self.settings.orders.countdown_cancel_s
        if countdown_s > 0 and not self.dry_run:
            self.supervisor.spawn("countdown", lambda: heartbeat(rest, self.settings.symbols, countdown_s, self.clock))

    async def _cap_leverage(self, rest: BinanceRest) -> None:
        """Every traded symbol's leverage at risk.max_leverage (the risk gate refuses above it)."""
        cap = self.settings.risk.max_leverage
        for symbol in self.settings.symbols:
            leverage = await rest.set_leverage(symbol, cap)
            await self.state.set_leverage(symbol, leverage)

    def _journal_path(self) -> Path:
        """The configured journal; the offline demo (a fresh simulator every run) gets a fresh one."""
        if self.settings.embedded_sim:
            path = Path(tempfile.mkdtemp(prefix="aegis-demo-")) / "journal.sqlite"
            logger.info("journal of this demo run: {}", path)
            return path
        return self.settings.journal.path

    async def _start_ops(self) -> None:
        try:
            await self.ops.start()
        except OSError as exc:
            ops = self.settings.ops
            raise StartupError(
                f"ops.port: cannot listen on {ops.host}:{ops.port} ({exc.strerror or exc}); "
                "choose another port with ops.port / AEGIS_OPS__PORT / --ops-port (0 picks a free one)"
            ) from None

    def _on_auth_error(self, error: AuthError) -> None:
        """A key refused while running (revoked, IP no longer whitelisted): stop, do not loop."""
        if not self._stop.is_set():
            logger.error("{}", auth_advice(error))
            self.request_stop("the exchange refused the API key", EXIT_AUTH)

    def _build_rest(self, urls: Endpoints) -> BinanceRest:
        key, secret = self.settings.credentials()
        rest = self.settings.rest
        return BinanceRest(
            urls.rest_url,
            key.get_secret_value(),
            secret.get_secret_value(),
            self.clock,
            timeout_s=rest.timeout_s,
            recv_window_ms=rest.recv_window_ms,
            rate_share=rest.weight_share,
        )

    async def _exchange_urls(self) -> Endpoints:
        if self.settings.embedded_sim:
            self._sim = await start_embedded_sim(self.settings, self.clock)
            self.fill_model = self.settings.sim.fill_model
            return self.settings.endpoint(str(self._sim.rest_url))
        if self.settings.profile == "sim":
            url = self.settings.endpoint().rest_url
            await follow_sim_clock(self.clock, url, self.settings.rest.recv_window_ms)
        return self.settings.endpoint()

    async def _wait(self, run_for_s: float | None) -> int:
        waiters: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self._stop.wait()),
            asyncio.ensure_future(self.supervisor.wait_fatal()),
        ]
        if run_for_s is not None:
            waiters.append(asyncio.ensure_future(asyncio.sleep(run_for_s)))
        done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()
        if waiters[1] in done:
            logger.error("{}; stopping the engine", waiters[1].result())
            return EXIT_FAILED
        if waiters[0] not in done:
            logger.info("run finished after {} s of exchange time", run_for_s)
        return self._exit_code

    async def _shutdown(self) -> bool:
        """Stop tasks, close the listenKey, the adapter, the ops endpoint and the embedded simulator,
        all within ``engine.shutdown_timeout_s``; an unreachable exchange costs a warning, not the exit code."""
        loop = asyncio.get_running_loop()
        timeout = self.settings.engine.shutdown_timeout_s
        deadline = loop.time() + timeout
        if self.alerts.enabled:
            await self.alerts.flush(min(5.0, timeout / 2))
        await self._final_check(timeout / 3)
        clean = await self.supervisor.stop(timeout)
        if self.runner is not None:
            self.runner.stop()
        await self._report(left_s=max(0.1, deadline - loop.time()))

        def left() -> float:
            return max(0.1, deadline - loop.time())

        if self.trader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.trader.close(), left())
        if self.journal is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.journal.record_report(ENGINE_RECORD, self.clock.now_ms(), {"pid": os.getpid(), "stopped": True}), left()
                )
                await asyncio.wait_for(self.journal.close(), left())

        if self.user is not None:  # close the listenKey: a stale key must not outlive the engine
            try:
                await asyncio.wait_for(self.user.close(), left())
            except Exception as exc:
                logger.warning("the listenKey could not be closed ({!r}); it expires by itself within 60 min", exc)
        if self.rest is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.rest.close(), left())
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ops.stop(), left())
        if self._sim is not None:
            try:
                await asyncio.wait_for(self._sim.stop(), left())
            except Exception as exc:
                logger.warning("embedded simulator did not stop cleanly: {!r}", exc)
            self._sim = None
        logger.info("engine stopped{}", "" if clean else " (some tasks did not stop in time)")
        return clean

    async def _final_check(self, budget_s: float) -> None:
        """The strategy stops first; then one last reconciliation says whether the engine ends with
        the exchange's truth (in the summary). Skipped when the exchange does not answer in time."""
        if self.runner is not None:
            self.supervisor.cancel("strategy")
        if self.reconciler is None or self.reconciler.runs == 0 or self._exit_code == EXIT_AUTH:
            return
        try:
            report = await asyncio.wait_for(self.reconciler.reconcile("final check at shutdown"), budget_s)
        except Exception as exc:
            logger.warning("final reconciliation not done: {!r}", exc)
            return
        self.final_check = report

    async def _report(self, left_s: float) -> None:
        """The end-of-run summary (and HTML report) of a run that traded or could have."""
        if self.trader is None or self.journal is None:
            return
        try:
            await asyncio.wait_for(self.trader.ledger.flush(), left_s / 2)
            self.summary = await asyncio.wait_for(reporting.summarize(self), left_s / 2)
        except Exception as exc:
            logger.warning("run summary not made: {!r}", exc)
            return
        for label, value in self.summary.lines():
            logger.info("summary: {}: {}", label, value)
        if self.view:
            reporting.print_summary(self.summary)
        if self.report_dir is not None:
            try:
                self.report_path = await reporting.write_report(self, self.summary, self.report_dir)
            except Exception as exc:
                logger.warning("HTML report not written: {!r}", exc)
            if self.report_path is not None:
                logger.info("HTML report: {}", self.report_path.resolve())

    def _engine_state(self) -> dict[str, Any]:
        return {
            "engine": {
                "profile": self.settings.profile,
                "symbols": list(self.settings.symbols),
                "uptime_ms": self.clock.now_ms() - self.started_ms,
                "rest_url": self.urls.rest_url if self.urls else None,
                "ws_url": self.urls.ws_url if self.urls else None,
            },
            "rest": self.rest.status() if self.rest is not None else None,
            "trading": self.trader.status() if self.trader is not None else None,
            "strategy": self.runner.status() if self.runner is not None else None,
            "tasks": {
                name: {"critical": i.critical, "running": i.running, "restarts": i.restarts, "last_error": i.last_error}
                for name, i in self.supervisor.tasks.items()
            },
        }


def _kill(engine: Engine, reason: str) -> dict[str, Any]:
    engine.kill(reason)
    return {"kill_switch": engine.trader.risk.kill.reason if engine.trader else None}
