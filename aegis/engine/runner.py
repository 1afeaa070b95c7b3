"""Running the engine as a process: the event loop, signals, the demo's wall-clock duration."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import TYPE_CHECKING

from aegis.engine.engine import Engine
from aegis.ops.console import LiveView
from aegis.strategy.api import Strategy

if TYPE_CHECKING:
    from aegis.config import Settings

__all__ = ["run"]


def _install_signal_handlers(engine: Engine) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, engine.request_stop, sig.name)
    loop.add_signal_handler(signal.SIGUSR1, engine.kill, "SIGUSR1")


def _stop_after_wall_seconds(engine: Engine, seconds: float) -> None:
    """``--duration`` is wall time whatever the loop's clock does: a timer thread asks for the stop."""
    loop = asyncio.get_running_loop()
    reason = f"demo finished after {seconds:g} s"
    timer = threading.Timer(seconds, loop.call_soon_threadsafe, (engine.request_stop, reason))
    timer.daemon = True
    timer.start()


async def _main(settings: Settings, run_for_s: float | None, dry_run: bool, strategy: Strategy | None) -> int:
    view = LiveView.wanted(settings.logging.json_)
    engine = Engine(settings, dry_run=dry_run, strategy=strategy, view=view, report_dir=settings.engine.report_dir)
    _install_signal_handlers(engine)
    if run_for_s is not None:
        _stop_after_wall_seconds(engine, run_for_s)
    return await engine.run()


def run(
    settings: Settings, run_for_s: float | None = None, *, dry_run: bool = False, strategy: Strategy | None = None
) -> int:
    """Run the engine until a signal (or ``run_for_s`` wall seconds); returns the exit code.

    With the embedded simulator (the offline demo) the engine and the exchange share a paced
    virtual clock: exchange time runs up to ``sim.speed`` times faster than the wall, yet no work
    ever takes exchange time, so a signed request is never late. Otherwise: uvloop, real time.
    """
    if settings.embedded_sim:
        from aegis import virtualtime

        code: int = virtualtime.run(_main(settings, run_for_s, dry_run, strategy), pace=settings.sim.speed)
        return code
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stdlib loop as a fallback
        return asyncio.run(_main(settings, run_for_s, dry_run, strategy))
    return uvloop.run(_main(settings, run_for_s, dry_run, strategy))
