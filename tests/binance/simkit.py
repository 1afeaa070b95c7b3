"""Starting aegis.sim on an ephemeral loopback port and talking to its admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from aegis.binance import BinanceRest
from aegis.clock import Clock
from aegis.sim.config import DEMO_API_KEY, DEMO_API_SECRET, SimConfig
from aegis.sim.server import SimServer


@asynccontextmanager
async def running_sim(**config: Any) -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(**config), host="127.0.0.1", port=0) as server:
        yield server


def rest_for(
    server: SimServer, *, key: str = DEMO_API_KEY, secret: str = DEMO_API_SECRET, **kw: Any
) -> BinanceRest:
    clock = Clock(speed=server.sim.clock.speed)
    return BinanceRest(server.rest_url, key, secret, clock, **kw)


async def inject(server: SimServer, **spec: Any) -> dict[str, Any]:
    """POST /_sim/faults: the simulator's public fault-injection endpoint."""
    async with aiohttp.ClientSession() as s, s.post(f"{server.rest_url}/_sim/faults", json=spec) as r:
        body: dict[str, Any] = await r.json()
        assert r.status == 200, body
        return body


async def faults(server: SimServer) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"{server.rest_url}/_sim/faults") as r:
        rows: list[dict[str, Any]] = await r.json()
        return rows
