"""Composition root: builds the engine from Settings, runs its tasks, shuts down cleanly.

One uvloop event loop. SIGTERM and SIGINT start a graceful shutdown bounded by
``engine.shutdown_timeout_s``; a clean shutdown exits 0, a failed critical task exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from loguru import logger

from aegis.account.stream import UserStream
from aegis.binance import BinanceRest
from aegis.clock import Clock
from aegis.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from aegis.market.feed import MarketFeed
from aegis.ops.server import OpsServer
from aegis.reconcile.reconciler import Reconciler
from aegis.reconcile.requests import ReconcileRequests
from aegis.state.store import StateStore
from aegis.supervisor import Supervisor

if TYPE_CHECKING:
    from aegis.config import Endpoints, Settings




# A signed request needs this much wall time to reach the exchange within recvWindow (loopback and
# a busy loop included); a simulator so fast that recvWindow lasts less is refused at start-up.
MIN_SIGNING_SLACK_WALL_MS = 50.0


class StartupError(Exception):
    """The engine cannot start with this configuration on this exchange (exit code 2)."""


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Exchange time. The embedded simulator shares the loop's (virtual, paced) time at speed 1; a
        # separate simulator's speed is learned at start-up; Binance runs at 1.
        self.clock = Clock()
        self.state = StateStore(max_candles=settings.market.max_candles)
        self.supervisor = Supervisor(
            self.clock,
            backoff_initial_s=settings.engine.restart_backoff_initial_s,
            backoff_max_s=settings.engine.restart_backoff_max_s,
        )
        self.ops = OpsServer(
            self.state,
            problems=[self.supervisor.problems],
            extra_state=self._engine_state,
            host=settings.ops.host,
            port=settings.ops.port,
        )
        self.urls: Endpoints | None = None
        self.rest: BinanceRest | None = None
        self.market: MarketFeed | None = None
        self.user: UserStream | None = None
        # After every user-stream reconnect (and at start-up) the reconciler adopts the exchange's state.
        self.reconcile_requests = ReconcileRequests(self.clock.now_ms)
        self._sim: Any = None
        self._started_ms = self.clock.now_ms()
        self._stop = asyncio.Event()

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            logger.info("shutdown requested: {}", reason)
            self._stop.set()

    async def run(self, run_for_s: float | None = None) -> int:
        """Start everything, wait for a stop signal, a fatal task or the demo's end, then stop."""
        try:
            await self._start()
        except StartupError as exc:
            logger.error("cannot start: {}", exc)
            await self._shutdown()
            return EXIT_USAGE
        except Exception as exc:
            logger.opt(exception=exc).error("engine failed to start")
            await self._shutdown()
            return EXIT_FAILED
        code = await self._wait(run_for_s)
        clean = await self._shutdown()
        return code if clean else EXIT_FAILED

    async def _start(self) -> None:
        self.urls = await self._exchange_urls()
        logger.info("profile {}: REST {} WS {}", self.settings.profile, self.urls.rest_url, self.urls.ws_url)
        self.rest = self._build_rest(self.urls)
        await self._check_symbols()
        self.market = MarketFeed(
            self.settings.market, self.settings.symbols, self.rest, self.urls.ws_url, self.state, self.clock
        )
        self.user = UserStream.from_settings(
            self.settings.userstream,
            self.rest,
            self.urls.ws_url,
            self.state,
            self.clock,
            reconcile=self.reconcile_requests,
        )
        rs = self.settings.reconcile
        reconciler = Reconciler(
            self.rest,
            self.rest.server_clock,
            self.state,
            self.reconcile_requests,
            self.clock,
            interval_s=rs.interval_s,
            retry_s=rs.retry_s,
            max_age_s=rs.max_age_s,
            max_failures=rs.max_failures,
        )
        self.ops.add_problem_source(self.rest.problems)
        self.ops.add_problem_source(self.market.problems)
        self.ops.add_problem_source(self.user.problems)
        self.ops.add_problem_source(reconciler.problems)
        await self.ops.start()
        self.supervisor.spawn("market", self.market.run, critical=True)
        self.supervisor.spawn("user", self.user.run, critical=True)
        self.supervisor.spawn("reconcile", reconciler.run)

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

    async def _check_symbols(self) -> None:
        """Refuse symbols the exchange does not list as trading perpetuals, before any task starts."""
        assert self.rest is not None
        info = await self.rest.exchange_info()
        bad = [s for s in self.settings.symbols if s not in info.symbols or not info.symbols[s].trading]
        if bad:
            raise StartupError(f"symbols: not trading on this exchange: {', '.join(bad)}")
        if await self.rest.hedge_mode():
            raise StartupError(
                "the account is in hedge mode (dualSidePosition): aegis trades one-way mode only; "
                "switch the position mode to one-way (Binance: Preferences > Position Mode) and restart"
            )

    async def _exchange_urls(self) -> Endpoints:
        if self.settings.embedded_sim:
            return self.settings.endpoint(await self._start_embedded_sim())
        if self.settings.profile == "sim":
            await self._follow_sim_clock(self.settings.endpoint().rest_url)
        return self.settings.endpoint()

    async def _follow_sim_clock(self, sim_url: str) -> None:
        """A separate ``aegis sim`` may run faster than the wall: run the engine's clock at its speed,
        or refuse to start when no signed request could reach it within recvWindow."""
        import aiohttp

        try:
            async with aiohttp.ClientSession() as http, http.get(f"{sim_url}/_sim/state") as resp:
                body = await resp.json(content_type=None)
            speed, now_ms = float(body["speed"]), int(body["clock_ms"])
        except Exception as exc:
            raise StartupError(f"sim.url: {sim_url} does not answer as an aegis simulator ({exc})") from None
        window_ms = self.settings.rest.recv_window_ms
        if window_ms / speed < MIN_SIGNING_SLACK_WALL_MS:
            raise StartupError(
                f"sim.url: the simulator runs at {speed:g}x, so recvWindow ({window_ms} ms) lasts "
                f"{window_ms / speed:.1f} ms of wall time and signed requests would be refused (-1021); "
                f"run it at <= {window_ms / MIN_SIGNING_SLACK_WALL_MS:.0f}x or raise rest.recv_window_ms"
            )
        self.clock.set_rate(speed, now_ms)
        logger.info("following the simulator's clock at {:g}x", speed)

    async def _start_embedded_sim(self) -> str:
        """The offline default: the simulator runs in this process but is reached over loopback HTTP/WS."""
        from aegis.sim.config import DEMO_ACCOUNT, AccountSpec, SimConfig
        from aegis.sim.server import SimServer

        sim = self.settings.sim
        key, secret = self.settings.credentials()
        accounts: tuple[AccountSpec, ...] = (DEMO_ACCOUNT,)
        if key.get_secret_value() != DEMO_ACCOUNT.api_key:  # configured keys get their own account
            accounts += (AccountSpec(key.get_secret_value(), secret.get_secret_value()),)
        # Both sides run on the loop's virtual time, paced at sim.speed by run(): speed 1 here.
        config = SimConfig(
            speed=1.0, accounts=accounts, data_paths=(sim.data,) if sim.data is not None else ()
        )
        self._sim = SimServer(config, host=sim.host, port=sim.port)
        await self._sim.start()
        logger.info("embedded simulator on {} (exchange time at up to {:g}x)", self._sim.rest_url, sim.speed)
        return str(self._sim.rest_url)

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
        return EXIT_OK

    async def _shutdown(self) -> bool:
        """Stop tasks, then the ops endpoint and the embedded simulator, all within the timeout."""
        timeout = self.settings.engine.shutdown_timeout_s
        deadline = time.monotonic() + timeout
        clean = await self.supervisor.stop(timeout)
        if self.user is not None:  # close the listenKey: a stale key must not outlive the engine
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.user.close(), max(0.1, deadline - time.monotonic()))
        if self.rest is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.rest.close(), max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ops.stop(), max(0.1, deadline - time.monotonic()))
        if self._sim is not None:
            try:
                await asyncio.wait_for(self._sim.stop(), max(0.1, deadline - time.monotonic()))
            except Exception as exc:
                logger.warning("embedded simulator did not stop cleanly: {!r}", exc)
            self._sim = None
        logger.info("engine stopped{}", "" if clean else " (some tasks did not stop in time)")
        return clean

    def _engine_state(self) -> dict[str, Any]:
        return {
            "engine": {
                "profile": self.settings.profile,
                "symbols": list(self.settings.symbols),
                "uptime_ms": self.clock.now_ms() - self._started_ms,
                "rest_url": self.urls.rest_url if self.urls else None,
                "ws_url": self.urls.ws_url if self.urls else None,
            },
            "rest": self.rest.status() if self.rest is not None else None,
            "tasks": {
                name: {
                    "critical": i.critical,
                    "running": i.running,
                    "restarts": i.restarts,
                    "last_error": i.last_error,
                }
                for name, i in self.supervisor.tasks.items()
            },
        }


def _install_signal_handlers(engine: Engine) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, engine.request_stop, sig.name)


async def _main(settings: Settings, run_for_s: float | None) -> int:
    engine = Engine(settings)
    _install_signal_handlers(engine)
    if run_for_s is not None:
        _stop_after_wall_seconds(engine, run_for_s)
    return await engine.run()


def _stop_after_wall_seconds(engine: Engine, seconds: float) -> None:
    """``--duration`` is wall time whatever the loop's clock does: a timer thread asks for the stop."""
    loop = asyncio.get_running_loop()
    timer = threading.Timer(seconds, loop.call_soon_threadsafe, (engine.request_stop, f"demo finished after {seconds:g} s"))
    timer.daemon = True
    timer.start()


def run(settings: Settings, run_for_s: float | None = None) -> int:
    """Run the engine until a signal (or ``run_for_s`` wall seconds); returns the exit code.

    With the embedded simulator (the offline demo) the engine and the exchange share a paced
    virtual clock: exchange time runs up to ``sim.speed`` times faster than the wall, yet no work
    ever takes exchange time, so a signed request is never late. Otherwise: uvloop, real time.
    """
    if settings.embedded_sim:
        from aegis import virtualtime

        result: int = virtualtime.run(_main(settings, run_for_s), pace=settings.sim.speed)
        return result
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stdlib loop as a fallback
        return asyncio.run(_main(settings, run_for_s))
    return uvloop.run(_main(settings, run_for_s))
