"""Rigs for end-to-end tests: the engine's own components against the simulator, on virtual time.

* ``account_rig``: the account side as the engine composes it (REST adapter, state store, user
  stream, reconciler), without the market feed; the exchange's truth comes over the admin API.
* ``market_rig``: the market side as the engine composes it (REST adapter, state store, market
  feed) with an ops endpoint over the store; the exchange's truth is its own GET /fapi/v1/klines.
* ``engine_rig``: the whole engine (``aegis run --sim-url``) in this process.

Everything runs on the test's ``VirtualTimeLoop``: ``await rig.at(hours=3)`` lets three exchange
hours pass with every timer firing as it would.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from aegis.account.stream import UserStream
from aegis.binance import BinanceRest
from aegis.clock import Clock
from aegis.config import MarketSettings
from aegis.domain import MINUTE_MS, UserEvent
from aegis.engine import Engine
from aegis.market.feed import MarketFeed
from aegis.ops.server import OpsServer
from aegis.reconcile.reconciler import Reconciler
from aegis.reconcile.requests import ReconcileRequests
from aegis.sim.admin import SimAdmin
from aegis.sim.server import SimServer
from aegis.state import StateStore
from tests.harness import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    engine_clock,
    exchange_sleep,
    rest_for,
    running_sim,
    until,
)

SYMBOL = "BTCUSDT"
HOUR = 3600.0


@dataclass
class AccountRig:
    sim: SimServer
    admin: SimAdmin
    clock: Clock
    rest: BinanceRest
    state: StateStore
    requests: ReconcileRequests
    stream: UserStream
    reconciler: Reconciler | None
    emitted: list[dict[str, Any]] = field(default_factory=list)  # every user event the exchange sent us
    applied: list[UserEvent] = field(default_factory=list)  # every event the applier wrote
    start_s: float = 0.0

    def hours(self) -> float:
        """Exchange hours since the rig started."""
        return (self.clock.monotonic() - self.start_s) / HOUR

    async def at(self, *, hours: float) -> None:
        """Let exchange time run until ``hours`` after the start (everything runs meanwhile)."""
        await asyncio.sleep(max(0.0, (hours - self.hours()) * HOUR))

    async def trade(self, side: str, qty: str = "0.001", *, events: bool = True) -> int:
        """An out-of-band MARKET order on our account (as from the Binance app); its order id."""
        order = await self.admin.trade(DEMO_API_KEY, SYMBOL, side, qty, events=events)
        return int(order["orderId"])

    def filled(self, order_id: int) -> bool:
        known = self.state.order_by_id(SYMBOL, order_id)
        return known is not None and known.status == "FILLED"

    async def trade_seen(self, side: str, qty: str = "0.001") -> float:
        """Trade and wait until the stream reflected the fill; returns the exchange seconds it took."""
        order_id = await self.trade(side, qty)
        return await until(lambda: self.filled(order_id), 5.0, f"fill of out-of-band order {order_id}")

    async def truth(self) -> dict[str, Any]:
        account: dict[str, Any] = (await self.sim.state())["accounts"][DEMO_API_KEY]
        return account

    async def position(self) -> Decimal:
        """The exchange's BTCUSDT position amount."""
        rows = (await self.truth())["positions"]
        return sum((Decimal(p["positionAmt"]) for p in rows if p["symbol"] == SYMBOL), Decimal(0))

    def store_position(self) -> Decimal:
        pos = self.state.position(SYMBOL)
        return pos.amount if pos is not None else Decimal(0)

    async def assert_matches_exchange(self) -> None:
        """Positions, open orders, algo orders and wallet balances equal the simulator's."""
        truth = await self.truth()
        positions = {p["symbol"]: Decimal(p["positionAmt"]) for p in truth["positions"] if Decimal(p["positionAmt"])}
        assert {p.symbol: p.amount for p in self.state.positions()} == positions
        assert sorted(o.client_order_id for o in self.state.open_orders()) == sorted(
            o["clientOrderId"] for o in truth["open_orders"]
        )
        assert sorted(a.client_algo_id for a in self.state.open_algo_orders()) == sorted(
            a["clientAlgoId"] for a in truth["open_algo_orders"]
        )
        wallets = {b["asset"]: Decimal(b["balance"]) for b in truth["balances"] if Decimal(b["balance"])}
        assert {b.asset: b.wallet_balance for b in self.state.balances() if b.wallet_balance} == wallets

    def reconnect_requests(self) -> list[str]:
        return [r.reason for r in self.requests.history if r.reason.startswith("reconnected after")]


@contextlib.asynccontextmanager
async def account_rig(
    *, reconciler: bool = True, sim: dict[str, Any] | None = None, **stream_kwargs: Any
) -> AsyncIterator[AccountRig]:
    """The account side of the engine against a fresh simulator, connected and reconciled once."""
    async with running_sim(**(sim or {})) as server, SimAdmin(server.rest_url) as admin:
        clock = engine_clock(server)
        rest = rest_for(server, clock=clock)
        state = StateStore()
        requests = ReconcileRequests(clock.now_ms)
        stream = UserStream(rest, server.ws_url, state, clock, reconcile=requests, **stream_kwargs)
        rec = Reconciler(rest, rest.server_clock, state, requests, clock) if reconciler else None
        rig = AccountRig(server, admin, clock, rest, state, requests, stream, rec, start_s=clock.monotonic())
        server.sim.bus.on_user_event(lambda key, event: rig.emitted.append(event) if key == DEMO_API_KEY else None)
        stream.applier.on_event(rig.applied.append)
        tasks = [asyncio.create_task(stream.run(), name="user")]
        if rec is not None:
            tasks.append(asyncio.create_task(rec.run(), name="reconcile"))
        try:
            await until(lambda: bool(stream.status()["connected"]), 10.0, "first connect")
            if rec is not None:
                await until(lambda: rec.runs >= 1 and requests.pending == 0, 10.0, "start-up reconciliation")
            yield rig
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await stream.close()
            await rest.close()


MARKET_SYMBOLS = ("BTCUSDT", "ETHUSDT", "XRPUSDT")  # two replayed from real candles, one synthetic


@dataclass
class MarketRig:
    """The engine's market side against the simulator; ``ops_url`` serves the store as the engine does."""

    sim: SimServer
    admin: SimAdmin
    clock: Clock
    rest: BinanceRest
    state: StateStore
    feed: MarketFeed
    ops_url: str
    http: aiohttp.ClientSession
    task: asyncio.Task[None] | None = None

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.feed.symbols

    def start(self) -> None:
        """Run the feed, as the supervisor does (again after ``stop``: a restart)."""
        self.task = asyncio.create_task(self.feed.run(), name="market")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def ready(self, within: float = 600.0) -> None:
        """Every symbol warmed up (or the feed task ended, which fails here)."""
        await until(lambda: all(self.feed.is_ready(s) for s in self.symbols) or self._ended(), within, "warm-up")
        assert not self._ended(), self.task

    def _ended(self) -> bool:
        return self.task is not None and self.task.done()

    async def minutes(self, n: float) -> None:
        """Let ``n`` exchange minutes pass."""
        await exchange_sleep(self.sim, n * 60)

    def exchange_last_closed(self) -> int:
        """Open time of the newest candle the exchange has closed, right now."""
        now = self.sim.sim.clock.now_ms()
        return now - now % MINUTE_MS - MINUTE_MS

    def caught_up(self, symbol: str) -> bool:
        return self.feed.in_sync(symbol) and self.feed.last_closed_ms(symbol) == self.exchange_last_closed()

    async def stored_rows(self, symbol: str) -> list[list[Any]]:
        """GET /state/candles/{symbol}: the store, as an operator reads it."""
        async with self.http.get(f"{self.ops_url}/state/candles/{symbol}") as r:
            assert r.status == 200
            rows: list[list[Any]] = await r.json()
            return rows

    async def state_json(self) -> dict[str, Any]:
        await self.feed.publish_status()
        async with self.http.get(f"{self.ops_url}/state") as r:
            assert r.status == 200
            body: dict[str, Any] = await r.json()
            return body

    async def health(self) -> tuple[int, Any]:
        async with self.http.get(f"{self.ops_url}/health") as r:
            return r.status, await r.json(content_type=None)

    async def exchange_rows(self, symbol: str, first_open: int, last_open: int) -> list[list[Any]]:
        """The simulator's own GET /fapi/v1/klines over [first_open, last_open]."""
        params = {
            "symbol": symbol,
            "interval": "1m",
            "startTime": str(first_open),
            "endTime": str(last_open + MINUTE_MS - 1),
            "limit": "1500",
        }
        async with self.http.get(f"{self.sim.rest_url}/fapi/v1/klines", params=params) as r:
            assert r.status == 200
            rows: list[list[Any]] = await r.json()
            return rows

    async def assert_complete(self, within: float = 600.0, *, history: int | None = None) -> None:
        """Wait (exchange seconds) until every symbol reached the candle the exchange closed last,
        then compare the store with the exchange field for field: every closed candle, once, in
        order, nothing invented, no hole."""
        for symbol in self.symbols:
            await until(lambda s=symbol: self.caught_up(s), within, f"{symbol} caught up: {self.feed.status()}")
        for symbol in self.symbols:
            stored = await self.stored_rows(symbol)
            assert len(stored) >= (history or self.feed.settings.history_candles)
            exchange = await self.exchange_rows(symbol, stored[0][0], stored[-1][0])
            assert stored == exchange, f"{symbol}: store differs from the exchange"
            assert [r[0] for r in stored] == list(range(stored[0][0], stored[-1][0] + 1, MINUTE_MS))
        assert self.feed.status()["holes"] == 0


@contextlib.asynccontextmanager
async def market_rig(
    symbols: tuple[str, ...] = MARKET_SYMBOLS,
    *,
    history: int = 60,
    sim: dict[str, Any] | None = None,
    rest_class: type[BinanceRest] = BinanceRest,
    start: bool = True,
    **market: Any,
) -> AsyncIterator[MarketRig]:
    """The market feed against a fresh simulator, warmed up (unless ``start=False``: then the test
    sets up faults first and calls ``rig.start()`` and ``rig.ready()``).

    The simulator sends six kline frames a minute per symbol (``kline_update_ms`` 10 s) unless
    ``sim`` says otherwise; the feed's staleness limit is five exchange minutes, so a paused
    stream is found by its gap, not by a reconnect.
    """
    async with running_sim(**{"kline_update_ms": 10_000, **(sim or {})}) as server, SimAdmin(server.rest_url) as admin:
        clock = engine_clock(server)
        rest = rest_class(server.rest_url, DEMO_API_KEY, DEMO_API_SECRET, clock)
        state = StateStore(max_candles=max(1000, history))
        settings = MarketSettings(
            **{"history_candles": history, "max_candles": max(1000, history), "stale_after_s": 300.0,
               "status_interval_s": 1.0, **market}
        )  # fmt: skip
        feed = MarketFeed(settings, symbols, rest, server.ws_url, state, clock)
        ops = OpsServer(state, problems=[feed.problems])
        port = await ops.start()
        http = aiohttp.ClientSession()
        rig = MarketRig(server, admin, clock, rest, state, feed, f"http://127.0.0.1:{port}", http)
        try:
            if start:
                rig.start()
                await rig.ready()
            yield rig
        finally:
            await rig.stop()
            await http.close()
            await ops.stop()
            await rest.close()


@dataclass
class EngineRig:
    """A whole engine (``aegis run --sim --sim-url``) in this process, against ``sim``."""

    sim: SimServer
    admin: SimAdmin
    engine: Engine
    task: asyncio.Task[int]

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.engine.ops.bound_port}"

    async def get(self, path: str) -> tuple[int, Any]:
        import aiohttp

        async with aiohttp.ClientSession() as http, http.get(self.ops_url + path) as resp:
            return resp.status, await resp.json(content_type=None)

    async def healthy(self, within: float = 120.0) -> None:
        """Wait until /health answers 200 (warm-up done, streams up, first reconcile pass clean)."""
        last: list[Any] = []

        async def ok() -> bool:
            status, body = await self.get("/health")
            last[:] = [body]
            return status == 200

        await until(ok, within, f"engine healthy ({last})", step=0.5)

    async def position(self, symbol: str = SYMBOL) -> Decimal:
        """The engine's position in ``symbol`` as GET /state shows it."""
        rows = (await self.get("/state"))[1]["positions"]
        return sum((Decimal(p["amount"]) for p in rows if p["symbol"] == symbol), Decimal(0))

    async def stop(self) -> int:
        self.engine.request_stop("test finished")
        return await self.task


@contextlib.asynccontextmanager
async def engine_rig(
    *,
    sim: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    healthy: bool = True,
    strategy: Any = None,
    dry_run: bool = False,
) -> AsyncIterator[EngineRig]:
    """An in-process engine against a fresh simulator over loopback; stopped (exit code checked) at the end."""
    from aegis.config import Settings

    async with running_sim(**(sim or {})) as server, SimAdmin(server.rest_url) as admin:
        values: dict[str, Any] = {
            "profile": "sim",
            "symbols": ["BTCUSDT"],
            "sim": {"url": server.rest_url},
            "ops": {"port": 0},
            "market": {"history_candles": 100},
            "journal": {"path": str(Path(tempfile.mkdtemp(prefix="aegis-test-")) / "journal.sqlite")},
        }
        for key, value in (settings or {}).items():
            if isinstance(value, dict) and isinstance(values.get(key), dict):
                values[key] = {**values[key], **value}
            else:
                values[key] = value
        engine = Engine(Settings(**values), strategy=strategy, dry_run=dry_run)
        task = asyncio.create_task(engine.run(), name="engine")
        rig = EngineRig(server, admin, engine, task)
        try:
            await until(lambda: engine.ops.bound_port is not None or task.done(), 60.0, "ops endpoint up")
            if task.done():
                yield rig
                return
            if healthy:
                await rig.healthy()
            yield rig
        finally:
            ended_by_test = task.done()  # the test awaited it and checked its exit code itself
            if not ended_by_test:
                engine.request_stop("test finished")
            code = await task
            assert ended_by_test or code == 0, f"engine exited {code}"
