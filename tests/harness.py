"""The one test harness: a simulator on loopback, its admin API, the adapter, and waiting on conditions.

Every async test runs on a ``VirtualTimeLoop`` (tests/conftest.py): the simulator's clock, the
engine's clock and every timer share the loop's virtual time, which stands still while work is
pending and jumps to the next timer when everything is idle. So:

* ``await until(cond, within=s)`` polls ``cond`` while ``s`` seconds of exchange time pass; it
  fails if the condition is not met by then, whatever the machine is doing;
* ``await asyncio.sleep(s)`` lets ``s`` seconds of exchange time pass, during which the engine
  and the simulator do everything they would do in that time (a "nothing happened" assertion
  after it is meaningful);
* nothing here reads the wall clock, except ``wait_for_process`` for tests that wait on another
  process (and there only as a hang guard).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aegis.binance import BinanceRest
from aegis.clock import Clock
from aegis.domain import MINUTE_MS
from aegis.sim.admin import SimAdmin
from aegis.sim.config import DEMO_API_KEY, DEMO_API_SECRET, SimConfig
from aegis.sim.server import SimServer

__all__ = [
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "MINUTE_MS",
    "T_START_MS",
    "SimAdmin",
    "admin_for",
    "engine_clock",
    "exchange_sleep",
    "rest_for",
    "running_sim",
    "until",
    "wait_for_process",
]

# A fixed exchange start time, so tests that depend on the calendar (funding, candles) repeat exactly:
# 2026-11-15 00:00:30 UTC, half a minute into a candle.
T_START_MS = 1_794_700_830_000


Predicate = Callable[[], bool] | Callable[[], Awaitable[bool]]


async def until(predicate: Predicate, within: float = 30.0, what: str = "", *, step: float = 0.05) -> float:
    """Wait until ``predicate()`` holds, polling every ``step`` seconds of loop time; returns the
    loop seconds it took. Fails after ``within`` seconds of loop (exchange) time.

    ``predicate`` may be a coroutine function (an HTTP read of /health, /state...). On a
    ``wallclock`` test the loop's time is the wall clock, and ``within`` is then only a hang guard.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await _holds(predicate):
        if loop.time() - started > within:
            raise AssertionError(f"not within {within} s: {what or predicate}")
        await asyncio.sleep(step)
    return loop.time() - started


def wait_for_process(predicate: Callable[[], bool], hang_guard_s: float, what: str, *, step: float = 0.1) -> None:
    """For tests that wait on another process (a subprocess engine): poll ``predicate`` on the wall
    clock. ``hang_guard_s`` is only a guard against a hang, never a measure of speed: make it
    generous, and assert outcomes, not how long they took."""
    deadline = time.monotonic() + hang_guard_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"hung for {hang_guard_s} s: {what}")
        time.sleep(step)


async def _holds(predicate: Predicate) -> bool:
    result = predicate()
    if inspect.isawaitable(result):
        result = await result
    return bool(result)


async def exchange_sleep(server: SimServer, seconds: float) -> None:
    """Let ``seconds`` of the simulator's exchange time pass (whatever its speed)."""
    await asyncio.sleep(server.sim.clock.wall_seconds(seconds * 1000))


@contextlib.asynccontextmanager
async def running_sim(**config: Any) -> AsyncIterator[SimServer]:
    """A simulator on an ephemeral loopback port (``SimConfig`` fields as keywords)."""
    config.setdefault("start_ms", T_START_MS)
    async with SimServer(SimConfig(**config), host="127.0.0.1", port=0) as server:
        yield server


def engine_clock(server: SimServer) -> Clock:
    """An engine clock in step with the simulator's (same speed, same start)."""
    return Clock(speed=server.sim.clock.speed, start_ms=server.sim.clock.now_ms())


def rest_for(
    server: SimServer, *, key: str = DEMO_API_KEY, secret: str = DEMO_API_SECRET, clock: Clock | None = None, **kw: Any
) -> BinanceRest:
    """The engine's REST adapter pointed at ``server`` (the caller closes it)."""
    return BinanceRest(server.rest_url, key, secret, clock or engine_clock(server), **kw)


def admin_for(server: SimServer) -> SimAdmin:
    """The simulator's admin API over HTTP (the caller closes it, or uses ``async with``)."""
    return SimAdmin(server.rest_url)
