"""A whole engine and the simulator in this process, for benchmarks that time what the engine does.

Both run on one ``VirtualTimeLoop`` paced against the wall (as ``aegis run --sim`` runs them): work
takes no exchange time, so exchange seconds count only what the engine waits for (grace periods,
re-checks, backoffs, periods), and wall milliseconds count the rest as well. The engine is built
from ``Settings`` exactly as ``aegis run --sim-url`` builds it; the benchmark reaches it through
its public parts (the reconciler's reports, the ops endpoint) and the simulator's admin API.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from aegis.config import Settings
from aegis.engine import Engine
from aegis.reconcile.report import Report
from aegis.sim.admin import SimAdmin
from aegis.sim.config import SimConfig
from aegis.sim.server import SimServer

__all__ = ["START_MS", "Seen", "World", "engine_world"]

# The test suite's fixed exchange start (2026-11-15 00:00:30 UTC), so runs repeat.
START_MS = 1_794_700_830_000
_POLL_S = 0.001  # how often a wait looks again (loop seconds: 1 ms of wall when paced at 1)


@dataclass(frozen=True)
class Seen:
    """A reconcile report and when it came out (exchange ms as the engine reads it, wall seconds)."""

    report: Report
    ended_ms: int
    wall: float


@dataclass
class World:
    sim: SimServer
    admin: SimAdmin
    engine: Engine
    http: aiohttp.ClientSession
    reports: list[Seen] = field(default_factory=list)

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.engine.ops.bound_port}"

    def now_ms(self) -> int:
        """Exchange time as the engine reads it."""
        return self.engine.clock.now_ms()

    async def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of exchange time pass."""
        await self.engine.clock.sleep(seconds)

    async def until(self, cond: Callable[[], bool], hang_guard_s: float, what: str) -> None:
        """Wait (exchange time) until ``cond()``; ``hang_guard_s`` only guards against a hang."""
        deadline = self.now_ms() + hang_guard_s * 1000
        while not cond():
            if self.now_ms() > deadline:
                raise RuntimeError(f"not within {hang_guard_s} exchange s: {what}")
            await asyncio.sleep(_POLL_S)

    async def call(self, method: str, path: str) -> tuple[int, Any]:
        async with self.http.request(method, self.ops_url + path) as resp:
            return resp.status, await resp.json(content_type=None)

    async def healthy(self, hang_guard_s: float = 300.0) -> None:
        deadline = time.monotonic() + hang_guard_s
        while (await self.call("GET", "/health"))[0] != 200:
            if time.monotonic() > deadline or self.engine_task_done():
                raise RuntimeError(f"engine not healthy: {(await self.call('GET', '/health'))[1]}")
            await asyncio.sleep(0.1)

    def engine_task_done(self) -> bool:
        return any(t.get_name() == "engine" and t.done() for t in asyncio.all_tasks())

    async def idle(self) -> None:
        """No reconcile request pending (a pass it started may still be re-checking: space the
        repetitions by more than ``reconcile.recheck_delay_s``)."""
        requests = self.engine.reconcile_requests
        await self.until(lambda: requests.pending == 0, 120.0, "reconcile requests taken")


async def _watch(world: World) -> None:
    """Record every report the reconciler publishes, with the exchange and wall time it came out."""
    engine = world.engine
    await world.until(lambda: engine.reconciler is not None or world.engine_task_done(), 300.0, "reconciler built")
    if engine.reconciler is None:
        return

    def seen(report: Report) -> None:
        world.reports.append(Seen(report, world.now_ms(), time.perf_counter()))

    engine.reconciler.watch(seen)


def _settings(sim_url: str, overrides: dict[str, dict[str, Any]]) -> Settings:
    values: dict[str, Any] = {
        "profile": "sim",
        "symbols": ["BTCUSDT"],
        "sim": {"url": sim_url},
        "ops": {"port": 0},
        "market": {"history_candles": 100},
        "journal": {"path": str(Path(tempfile.mkdtemp(prefix="aegis-bench-")) / "journal.sqlite")},
    }
    for key, value in overrides.items():
        values[key] = {**values.get(key, {}), **value}
    return Settings(**values)


@contextlib.asynccontextmanager
async def engine_world(**overrides: dict[str, Any]) -> AsyncIterator[World]:
    """A simulator and an engine against it (settings sections as keywords), healthy and watched."""
    async with SimServer(SimConfig(start_ms=START_MS), host="127.0.0.1", port=0) as server, SimAdmin(
        server.rest_url
    ) as admin, aiohttp.ClientSession() as http:
        engine = Engine(_settings(server.rest_url, overrides))
        task = asyncio.create_task(engine.run(), name="engine")
        world = World(server, admin, engine, http)
        try:
            await _watch(world)
            await world.healthy()
            market = engine.market
            assert market is not None
            symbols = engine.settings.symbols
            await world.until(lambda: all(market.last_price(s) is not None for s in symbols), 120.0, "a price per symbol")
            yield world
        finally:
            engine.request_stop("benchmark finished")
            code = await task
            if code != 0:
                raise RuntimeError(f"engine exited {code}")
