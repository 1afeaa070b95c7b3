"""The reconciler against the simulator: phantoms removed, missed trades adopted, failures on /health."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import msgspec
import pytest

from aegis.binance import BinanceRest
from aegis.config import ReconcileSettings
from aegis.domain import OrderStatus
from aegis.reconcile.diff import Kind
from aegis.reconcile.reconciler import Reconciler
from aegis.reconcile.requests import ReconcileRequests
from aegis.sim.admin import SimAdmin
from aegis.sim.server import SimServer
from aegis.state import StateStore
from tests.factories import order, position
from tests.harness import DEMO_API_KEY, engine_clock, rest_for, running_sim, until


@dataclass
class World:
    sim: SimServer
    admin: SimAdmin
    rest: BinanceRest
    state: StateStore
    reconciler: Reconciler
    requests: ReconcileRequests


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with running_sim() as sim, SimAdmin(sim.rest_url) as admin:
        clock = engine_clock(sim)
        rest = rest_for(sim, clock=clock)
        state = StateStore()
        requests = ReconcileRequests(clock.now_ms)
        settings = ReconcileSettings(interval_s=60, max_age_s=120, max_failures=3, on_position="adopt")
        reconciler = Reconciler(rest, rest.server_clock, state, requests, clock, settings)
        yield World(sim, admin, rest, state, reconciler, requests)
        await rest.close()


async def test_start_up_loads_the_account_without_calling_it_a_correction(world: World) -> None:
    assert (await world.reconciler.reconcile("start-up")).clean
    assert world.state.snapshot().balances["USDT"].wallet_balance == Decimal("10000")


async def test_a_trade_the_stream_never_reported_is_adopted_and_reported(world: World) -> None:
    await world.reconciler.reconcile("start-up")
    await world.admin.trade(DEMO_API_KEY, "BTCUSDT", "SELL", "0.010", events=False)
    report = await world.reconciler.reconcile("test")
    kinds = {(m.kind, m.key): m for m in report.findings}
    missed = kinds[(Kind.POSITION, "BTCUSDT BOTH")]
    assert missed.engine is None and missed.exchange is not None and missed.exchange.startswith("-0.010 @ ")
    assert missed.action == "adopted"
    balance = kinds[(Kind.BALANCE, "USDT")]  # the taker fee moved the wallet
    assert Decimal(str(balance.engine)) == Decimal("10000") > Decimal(str(balance.exchange))
    assert world.state.snapshot().positions["BTCUSDT"].amount == Decimal("-0.010")


async def test_a_phantom_order_and_position_are_removed(world: World) -> None:
    await world.reconciler.reconcile("start-up")
    # Written after the start-up snapshot (say, an acknowledgement whose order was then cancelled
    # elsewhere), and old enough that no event in flight can explain them.
    now = world.sim.sim.clock.now_ms()
    await world.state.apply_order(msgspec.structs.replace(order("ghost-1", OrderStatus.NEW), update_time_ms=now))
    await world.state.apply_account(positions=[position("ETHUSDT", "1.5")], at_ms=now)
    await asyncio.sleep(5)
    report = await world.reconciler.reconcile("test")
    assert {(m.kind, m.key, m.exchange is None) for m in report.findings} == {
        (Kind.ORDER, "ghost-1", True),
        (Kind.POSITION, "ETHUSDT BOTH", True),
    }
    snap = world.state.snapshot()
    assert "ghost-1" not in snap.open_orders and "ETHUSDT" not in snap.positions
    assert snap.streams["reconcile"]["corrections"] == 2


async def test_a_reconciler_that_keeps_failing_turns_health_red_then_recovers(world: World) -> None:
    await world.admin.inject("fail_requests", path="/fapi/v3/account", count=4, status=500, code=-1000, msg="boom")
    task = asyncio.create_task(world.reconciler.run())
    try:
        await until(lambda: world.reconciler.failures >= 3, 60.0, "three failed passes")
        problems = world.reconciler.problems()
        assert any("failed 3 times in a row" in p for p in problems), problems
        await until(lambda: world.reconciler.runs == 1, 60.0, "a pass once the exchange answers")
        assert world.reconciler.problems() == []
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_reconciler_that_never_completes_a_pass_turns_health_red_within_its_bound(world: World) -> None:
    # Every pass fails on the clock (as when the engine's clock ran away from the exchange's):
    # the failures count, and so does the time without a completed pass.
    world.reconciler.settings = ReconcileSettings(interval_s=60, max_age_s=120, max_failures=10_000)
    await world.admin.inject("fail_requests", path="/fapi/v3/account", count=10_000, status=400, code=-1021,
                             msg="Timestamp for this request is outside of the recvWindow.")  # fmt: skip
    task = asyncio.create_task(world.reconciler.run())
    try:
        await asyncio.sleep(100)
        assert world.reconciler.problems() == []  # inside the 120 s bound
        took = await until(lambda: bool(world.reconciler.problems()), 60.0, "the bound passed")
        assert took <= 30.0
        assert "no reconcile pass completed for" in world.reconciler.problems()[0]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_watcher_gets_every_report_as_it_comes_out(world: World) -> None:
    seen: list[str] = []
    world.reconciler.watch(lambda report: seen.append(report.reason))
    await world.reconciler.reconcile("start-up")
    await world.admin.trade(DEMO_API_KEY, "BTCUSDT", "BUY", "0.010", events=False)
    found = await world.reconciler.reconcile("test")
    assert seen == ["start-up", "test"] and not found.clean
