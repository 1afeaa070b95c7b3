"""The reconciler against the simulator: phantoms removed, missed trades adopted, differences reported."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
import pytest

from aegis.account.stream import UserStream
from aegis.binance import BinanceRest
from aegis.clock import Clock
from aegis.config import UserStreamSettings
from aegis.domain import OrderStatus
from aegis.reconcile.reconciler import Reconciler
from aegis.reconcile.requests import ReconcileRequests
from aegis.sim.config import DEMO_API_KEY, DEMO_API_SECRET, SimConfig
from aegis.sim.server import SimServer
from aegis.state.store import StateStore
from tests.factories import order, position


@dataclass
class World:
    sim: SimServer
    rest: BinanceRest
    state: StateStore
    reconciler: Reconciler
    requests: ReconcileRequests


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with SimServer(SimConfig()) as sim:
        clock = Clock()
        rest = BinanceRest(sim.rest_url, DEMO_API_KEY, DEMO_API_SECRET, clock)
        state = StateStore()
        requests = ReconcileRequests(clock.now_ms)
        user = UserStream.from_settings(UserStreamSettings(), rest, sim.ws_url, state, clock, reconcile=requests)
        reconciler = Reconciler(rest, rest.server_clock, user, state, requests, clock)
        yield World(sim, rest, state, reconciler, requests)
        await rest.close()


async def _trade_without_events(sim: SimServer, side: str, quantity: str) -> None:
    body = {"api_key": DEMO_API_KEY, "symbol": "BTCUSDT", "side": side, "quantity": quantity, "events": False}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sim.rest_url}/_sim/trade", data=json.dumps(body)) as resp:
            assert resp.status == 200, await resp.text()


async def test_start_up_loads_the_account_without_calling_it_a_correction(world: World) -> None:
    assert await world.reconciler.reconcile("start-up") == []
    assert world.state.snapshot().balances["USDT"].wallet_balance == Decimal("10000")


async def test_a_trade_the_stream_never_reported_is_adopted_and_reported(world: World) -> None:
    await world.reconciler.reconcile("start-up")
    await _trade_without_events(world.sim, "SELL", "0.010")
    found = await world.reconciler.reconcile("test")
    assert "missed position BTCUSDT: store 0, exchange -0.010" in found
    assert any(line.startswith("balance USDT: store 10000") for line in found)  # the taker fee
    assert world.state.snapshot().positions["BTCUSDT"].amount == Decimal("-0.010")


async def test_a_phantom_order_and_position_are_removed(world: World) -> None:
    await world.reconciler.reconcile("start-up")
    await world.state.apply_order(order("ghost-1", OrderStatus.NEW))
    await world.state.apply_account(positions=[position("ETHUSDT", "1.5")])
    found = await world.reconciler.reconcile("test")
    assert "phantom order ghost-1 (BTCUSDT): not open on the exchange" in found
    assert "phantom position ETHUSDT: store 1.5, exchange 0" in found
    snap = world.state.snapshot()
    assert "ghost-1" not in snap.open_orders and "ETHUSDT" not in snap.positions
    assert snap.streams["reconcile"]["corrections"] == 2
