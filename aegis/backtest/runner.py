"""Running a backtest: the simulator and the whole live engine in one process, on one unpaced clock.

Both sides run on a ``VirtualTimeLoop`` without ``pace``: exchange time stands still while either
side has work (a request in flight, a frame unread, a callback ready) and jumps to the next due
timer when both are idle. So a candle closes only after everything the previous one caused is
done, a signed request is never late (the engine's clock is the exchange's), and what happens
does not depend on how fast or busy the machine is. The exchange replays the plan's candles
(``replay_aligned``: each at its own open time), publishes only closed klines (one frame per
candle per symbol) and applies the seed's fault schedule at its exchange times.
"""

from __future__ import annotations

import asyncio
import random
import signal
import tempfile
from pathlib import Path
from typing import Any

from loguru import logger

from aegis.backtest.engine import BacktestEngine
from aegis.backtest.plan import BacktestPlan
from aegis.backtest.progress import Progress
from aegis.config import Settings
from aegis.exitcodes import EXIT_INTERRUPTED, EXIT_OK
from aegis.strategy.api import Strategy

__all__ = ["BACKTEST_SETTINGS", "backtest_settings", "run"]

# Settings a backtest always uses (whatever settings.toml says): the stream carries closed klines
# only, so a frame comes once a minute per connection; nobody reads /state or the feed's status
# line every second (hourly here); the
# backstop reconciliation and the user stream's silence check run hourly, not every few minutes
# (each costs REST round trips, and a month has 720 hours); exchangeInfo does not change.
BACKTEST_SETTINGS: dict[str, dict[str, Any]] = {
    "market": {"status_interval_s": 3600.0, "stale_after_s": 180.0},
    "reconcile": {"interval_s": 3600.0, "max_age_s": 7200.0},
    "userstream": {"silence_threshold_s": 3600.0},
    "orders": {"filters_refresh_s": 86400.0},
}
# The dead man's switch without faults: engine and exchange share one process and one clock, and
# every request is answered at the instant it is sent, so no heartbeat can fail or come late and
# the countdown can never fire. Renewing it every 40 s was 4 of every 5 REST requests of a
# backtest; hourly it still runs (same requests, same weights at start-up). With faults injected
# the live cadence stays: a failed heartbeat or a clock jump firing the countdown is replayed.
QUIET_COUNTDOWN_S = 3 * 3600.0
# The engine's WebSocket pings, likewise, are off (ping_interval_s = 0): they find a dead TCP path,
# and without faults the loopback exchange never leaves one (a dropped connection is closed, which
# the read sees at once), so every ping would be answered and change nothing the engine decides.
# At the live 60 s they were a ping, a pong and their timers per minute on each connection, and
# any heartbeat a callback per frame received: about a quarter of a one-symbol backtest's loop
# callbacks. With faults (a frozen connection is a half-open one) the live interval stays.
# The exchange's pings (every 3 minutes on each connection, as Binance's) find a client that
# stopped answering; the engine always answers, so without faults they come hourly: the engine
# only echoes them, nothing else it does depends on them.
QUIET_PING_S = 3600.0
# The market stream's staleness check: without faults the exchange sends every minute's close, so
# it never fires; at 180 s the read loop still woke every two minutes to look (a wait, its timer
# and callbacks). With faults (dropped or frozen streams) the 180 s stays.
QUIET_STALE_S = 3600.0
QUIET_SIM_EXTRA = {"ws_ping_interval_ms": str(int(QUIET_PING_S * 1000))}
FAULT_MARGIN_MS = 20 * 60_000
SETTLE_S = 1.0  # after the last close: its orders are sent and answered before the stop
AUDIT_ROWS = 1_000  # nobody reads a backtest's exchange audit: a row per order request would grow with the run
PLACEHOLDER_URL = "http://127.0.0.1:1"  # the simulator's real port is known once it listens


def backtest_settings(base: Settings, plan: BacktestPlan, journal: Path) -> Settings:
    """``base`` with what a backtest needs: its symbols, warm-up and cadences, its own journal, no
    alerts (a replay must not page anyone), no kill-switch file; the simulator's URL comes later."""
    fields: dict[str, dict[str, Any]] = {
        **BACKTEST_SETTINGS,
        "ops": {"port": 0},
        "journal": {"path": journal},
        "alerts": {"urls": []},
        "risk": {"kill_switch_file": None},
        "sim": {"url": PLACEHOLDER_URL, "fill_model": plan.fill_model, "data": None},
    }
    if plan.faults is None and base.orders.countdown_cancel_s > 0:
        fields["orders"] = {**fields["orders"], "countdown_cancel_s": max(base.orders.countdown_cancel_s, QUIET_COUNTDOWN_S)}
    fields["market"] = {
        **fields["market"], "history_candles": plan.warmup, "max_candles": max(base.market.max_candles, plan.warmup),
    }  # fmt: skip
    if plan.faults is None:
        for section in ("market", "userstream"):
            fields[section] = {**fields[section], "ping_interval_s": 0.0}
        fields["market"]["stale_after_s"] = QUIET_STALE_S
    update: dict[str, Any] = {"profile": "sim", "symbols": list(plan.symbols), "api_key": None, "api_secret": None}
    for section, values in fields.items():
        update[section] = getattr(base, section).model_copy(update=values)
    return base.model_copy(update=update)


def run(plan: BacktestPlan, settings: Settings, strategy: Strategy, report_dir: Path) -> int:
    """Run the backtest to its end; returns the exit code (0 done, 1 failed, 130 interrupted)."""
    from aegis import virtualtime
    from aegis.backtest.connectors import backtest_connectors

    with backtest_connectors():  # the loop starts at a fixed whole second: the same timeouts every run
        code: int = virtualtime.run(_main(plan, settings, strategy, report_dir))
    return code


async def _main(plan: BacktestPlan, settings: Settings, strategy: Strategy, report_dir: Path) -> int:
    from aegis.sim.server import SimServer

    random.seed(plan.seed)  # the engine's jittered backoffs: the same seed, the same retries
    sim = SimServer(_sim_config(plan), host="127.0.0.1", port=0)
    await sim.start()
    progress = Progress(plan.candles)
    interrupted = asyncio.Event()
    try:
        settings = settings.model_copy(update={"sim": settings.sim.model_copy(update={"url": sim.rest_url})})
        fill_model = str(sim.sim.exchange.matcher.fill_model)
        engine = BacktestEngine(settings, strategy, plan, progress, report_dir, fill_model)
        _on_signals(engine, interrupted)
        logger.info("backtest {}: {} candles, fill model {}, faults {}", plan.label(), plan.candles, fill_model, plan.faults or "none")
        progress.start()
        task = asyncio.create_task(engine.run(), name="engine")
        stopper = asyncio.create_task(_stop_at_end(engine, sim, plan), name="backtest-end")
        try:
            code = await task
        finally:
            stopper.cancel()
            progress.stop()
        logger.info("backtest done: {} candles in the engine, {}", progress.done, progress.rate())
    finally:
        await sim.stop()
    return EXIT_INTERRUPTED if interrupted.is_set() and code == EXIT_OK else code


async def _stop_at_end(engine: BacktestEngine, sim: Any, plan: BacktestPlan) -> None:
    """Let exchange time reach the plan's end (the last candle closed, its orders answered), then stop."""
    await sim.sim.clock.sleep_until(plan.end_ms + int(SETTLE_S * 1000))  # exchange time: clock_jump faults count
    engine.request_stop("backtest reached --to")


def _on_signals(engine: BacktestEngine, interrupted: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def stop(name: str) -> None:
        interrupted.set()
        engine.request_stop(f"{name}: backtest interrupted")

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)


def _sim_config(plan: BacktestPlan) -> Any:
    from aegis.sim.chaos import schedule
    from aegis.sim.config import DEMO_API_KEY, SimConfig

    faults: tuple[dict[str, Any], ...] = ()
    if plan.faults is not None:
        # No fault in the last minutes: a clock_jump (up to 15 min) must not carry the exchange past --to.
        until = max(plan.start_ms + 1, plan.end_ms - FAULT_MARGIN_MS)
        entries = schedule(
            plan.seed, plan.start_ms, until, plan.faults.kinds, plan.faults.rate,
            api_key=DEMO_API_KEY, symbols=plan.symbols,
        )  # fmt: skip
        faults = tuple(entries)
    return SimConfig(
        start_ms=plan.start_ms, replay_aligned=True, partial_klines=False, seed=plan.seed,
        data_paths=(plan.data,) if plan.data is not None else (), fill_model=plan.fill_model,
        timestamp_reference="sim", fault_schedule=faults, audit_rows=AUDIT_ROWS,
        extra=dict(QUIET_SIM_EXTRA) if plan.faults is None else {},
    )  # fmt: skip


def journal_path() -> Path:
    """A fresh journal per backtest, in memory-backed storage when the system has it."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() else None
    return Path(tempfile.mkdtemp(prefix="aegis-backtest-", dir=base)) / "journal.sqlite"
