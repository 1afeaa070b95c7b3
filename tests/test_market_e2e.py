"""MarketFeed end to end: the simulator's faults over loopback HTTP and WebSocket, accelerated clock.

In every case the proof is the same: GET /state/candles/{SYMBOL} from an OpsServer over the
engine's StateStore equals the simulator's own GET /fapi/v1/klines over the same range, field
for field, and reaches the candle the simulator closed last. So every closed candle is there,
once, in order, and nothing was invented.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import pytest

from aegis.binance import BinanceRest
from aegis.clock import Clock
from aegis.config import MarketSettings
from aegis.domain import Candle
from aegis.market.feed import MarketFeed
from aegis.ops.server import OpsServer
from aegis.sim.config import DEMO_API_KEY, DEMO_API_SECRET, SimConfig
from aegis.sim.server import SimServer
from aegis.state.store import StateStore

SPEED = 600.0  # one exchange minute = 0.1 s on the wall
MINUTE_MS = 60_000
SYMBOLS = ("BTCUSDT", "ETHUSDT", "XRPUSDT")  # two replayed from real data, one synthetic
HISTORY = 60


@dataclass
class Rig:
    server: SimServer
    feed: MarketFeed
    state: StateStore
    ops_url: str
    http: aiohttp.ClientSession
    task: asyncio.Task[None]

    async def fault(self, kind: str, **params: Any) -> dict[str, Any]:
        async with self.http.post(f"{self.server.rest_url}/_sim/faults", json={"kind": kind, **params}) as r:
            body: dict[str, Any] = await r.json()
            assert r.status == 200, body
            return body

    async def faults(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.server.rest_url}/_sim/faults") as r:
            rows: list[dict[str, Any]] = await r.json()
            return rows

    async def sim_minutes(self, minutes: float) -> None:
        await asyncio.sleep(minutes * 60 / SPEED)

    async def stored_rows(self, symbol: str) -> list[list[Any]]:
        async with self.http.get(f"{self.ops_url}/state/candles/{symbol}") as r:
            assert r.status == 200
            rows: list[list[Any]] = await r.json()
            return rows

    async def exchange_rows(self, symbol: str, first_open: int, last_open: int) -> list[list[Any]]:
        params = {
            "symbol": symbol,
            "interval": "1m",
            "startTime": str(first_open),
            "endTime": str(last_open + MINUTE_MS - 1),
            "limit": "1500",
        }
        async with self.http.get(f"{self.server.rest_url}/fapi/v1/klines", params=params) as r:
            assert r.status == 200
            rows: list[list[Any]] = await r.json()
            return rows

    async def assert_in_sync(self, symbol: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.feed.in_sync(symbol):
            assert time.monotonic() < deadline, self.feed.status()
            await asyncio.sleep(0.005)

    async def assert_complete(self, timeout_s: float = 10.0) -> None:
        """Wait until the store has caught up with the exchange, then compare field for field."""
        deadline = time.monotonic() + timeout_s
        while True:
            now = self.server.sim.clock.now_ms()
            last_closed = now - now % MINUTE_MS - MINUTE_MS  # on the exchange, right now
            behind = [
                s
                for s in SYMBOLS
                if not self.feed.in_sync(s) or self.feed.status()[f"symbol.{s}.last_closed_ms"] != last_closed
            ]
            if not behind:
                break
            assert time.monotonic() < deadline, (
                f"store behind the exchange for {behind}: {self.feed.status()}"
            )
            await asyncio.sleep(0.01)
        for symbol in SYMBOLS:
            stored = await self.stored_rows(symbol)
            assert len(stored) >= HISTORY
            exchange = await self.exchange_rows(symbol, stored[0][0], stored[-1][0])
            assert stored == exchange, f"{symbol}: store differs from the exchange"
            assert [r[0] for r in stored] == list(range(stored[0][0], stored[-1][0] + 1, MINUTE_MS))
        assert self.feed.status()["holes"] == 0


@contextlib.asynccontextmanager
async def running(
    before_start: Callable[[Rig], Awaitable[None]] | None = None,
    speed: float = SPEED,
    rest_class: type[BinanceRest] = BinanceRest,
    **overrides: Any,
) -> AsyncIterator[Rig]:
    async with SimServer(SimConfig(speed=speed)) as server:
        clock = Clock(speed=speed, start_ms=server.sim.clock.now_ms())
        state = StateStore(max_candles=1000)
        rest = rest_class(server.rest_url, DEMO_API_KEY, DEMO_API_SECRET, clock)
        config = MarketSettings(
            history_candles=HISTORY, max_candles=1000, stale_after_s=300, status_interval_s=0.02, **overrides
        )
        feed = MarketFeed(config, SYMBOLS, rest, server.ws_url, state, clock)
        ops = OpsServer(state, problems=[feed.problems])
        port = await ops.start()
        http = aiohttp.ClientSession()
        rig = Rig(
            server, feed, state, f"http://127.0.0.1:{port}", http, asyncio.create_task(asyncio.sleep(0))
        )
        try:
            if before_start is not None:
                await before_start(rig)
            rest.start_clock_sync()
            rig.task = asyncio.create_task(feed.run(), name="market")
            await asyncio.wait_for(feed.wait_ready(), timeout=15)
            yield rig
        finally:
            rig.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rig.task
            await http.close()
            await ops.stop()
            await rest.close()


async def test_warm_up_then_a_healthy_stream_keeps_the_store_equal_to_the_exchange() -> None:
    async with running() as rig:
        await rig.assert_complete()
        for symbol in SYMBOLS:
            assert len(await rig.stored_rows(symbol)) >= HISTORY
        await rig.sim_minutes(3)
        await rig.assert_complete()
        async with rig.http.get(f"{rig.ops_url}/health") as r:
            assert r.status == 200, await r.text()
        await rig.feed.publish_status()
        async with rig.http.get(f"{rig.ops_url}/state") as r:
            market = (await r.json())["streams"]["market"]
        assert market["ready"] == len(SYMBOLS) and market["connected"] == 1


async def test_a_paused_stream_leaves_no_hole() -> None:
    async with running() as rig:
        await rig.fault("pause_market", candles=4)
        await rig.sim_minutes(7)
        await rig.assert_complete()
        assert rig.feed.status()["gaps_backfilled"] >= 4


async def test_dropped_connections_leave_no_hole() -> None:
    async with running() as rig:
        for _ in range(3):
            await rig.fault("drop_ws", scope="market")
            await rig.sim_minutes(1.5)
        await rig.assert_complete()
        assert rig.feed.status()["reconnects"] >= 3


async def test_symbols_split_across_connections_all_recover_from_a_drop() -> None:
    async with running(streams_per_connection=2) as rig:
        assert rig.feed.status()["connections"] == 2
        await rig.fault("drop_ws", scope="market")
        await rig.sim_minutes(2)
        await rig.assert_complete()
        status = rig.feed.status()
        assert status["conn.market-0.reconnects"] >= 1 and status["conn.market-1.reconnects"] >= 1


async def test_duplicated_and_reordered_events_are_stored_once_in_order() -> None:
    async with running() as rig:
        # At this speed the simulator sends ~6 events a minute per symbol (one step per 20 ms
        # wall): these counts span two or more candle closes of every symbol.
        await rig.fault("duplicate_market", count=30)
        await rig.sim_minutes(3)
        await rig.fault("reorder_market", count=45)
        await rig.sim_minutes(4)
        assert [f["status"] for f in await rig.faults()] == ["done", "done"]
        await rig.assert_complete()
        status = rig.feed.status()
        assert status["duplicates"] >= 1 and status["out_of_order"] >= 1, status


async def test_a_reconnect_after_a_long_outage_fetches_the_whole_interval() -> None:
    async with running() as rig:
        await rig.fault("drop_ws", scope="market")
        await rig.fault("clock_jump", ms=3 * 60 * MINUTE_MS)  # three hours pass on the exchange
        await rig.sim_minutes(3)
        await rig.assert_complete(timeout_s=15)
        assert rig.feed.status()["gaps_backfilled"] >= 180
        for symbol in SYMBOLS:
            assert len(await rig.stored_rows(symbol)) >= HISTORY + 180


async def test_a_429_storm_during_warm_up_delays_it_but_loses_nothing() -> None:
    async def storm(rig: Rig) -> None:
        await rig.fault("rate_limit", seconds=2, path="/fapi/v1/klines")

    # Real time: the fault's Retry-After is in exchange seconds while the adapter (rightly, per
    # HTTP) reads wall seconds; at speed 1 both agree and the test does not depend on which wins.
    async with running(storm, speed=1.0) as rig:
        stats = rig.feed.backfill.stats
        assert stats.rate_limited >= 1
        assert stats.rate_limited <= len(SYMBOLS) * 2, "the governor must hold requests, not hammer"
        await rig.assert_complete()


@pytest.fixture(autouse=True)
def _quiet_sim_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="aegis.sim")


async def test_a_restarted_feed_fetches_what_closed_while_it_was_down() -> None:
    async with running() as rig:
        rig.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rig.task
        await rig.fault("clock_jump", ms=45 * MINUTE_MS)
        rig.task = asyncio.create_task(rig.feed.run(), name="market")  # as the supervisor would
        await rig.assert_complete()
        assert rig.feed.status()["gaps_backfilled"] >= 45


class ExchangeWithHoles(BinanceRest):
    """The simulator's REST, except that the exchange "has no candles" for ``missing`` minutes.

    The simulator has every minute by construction; this is how a gap Binance itself cannot
    fill (an outage on its side) reaches the feed over the real adapter path.
    """

    missing: ClassVar[set[int]] = set()

    async def klines(self, *args: Any, **kwargs: Any) -> list[Candle]:
        rows = await super().klines(*args, **kwargs)
        return [c for c in rows if c.open_time_ms not in self.missing]


async def test_a_gap_the_exchange_cannot_fill_is_recorded_exposed_and_never_filled_in() -> None:
    async with running(rest_class=ExchangeWithHoles) as rig:
        now = rig.server.sim.clock.now_ms()
        forming = now - now % MINUTE_MS
        missing = {forming + MINUTE_MS, forming + 2 * MINUTE_MS}
        ExchangeWithHoles.missing = missing
        try:
            await rig.fault("pause_market", candles=4)  # the stream skips them too
            await rig.sim_minutes(6)
            deadline = time.monotonic() + 10
            while rig.feed.status()["holes"] < len(SYMBOLS):
                assert time.monotonic() < deadline, rig.feed.status()
                await asyncio.sleep(0.01)
            await rig.feed.publish_status()
            async with rig.http.get(f"{rig.ops_url}/state") as r:
                summary = (await r.json())["candles"]
            for symbol in SYMBOLS:
                holes = summary[symbol]["holes"]
                assert holes == [{"first_open_ms": min(missing), "last_open_ms": max(missing)}], holes
                stored = await rig.stored_rows(symbol)
                exchange = await rig.exchange_rows(symbol, stored[0][0], stored[-1][0])
                assert stored == [row for row in exchange if row[0] not in missing]
            symbol = SYMBOLS[0]
            await rig.assert_in_sync(symbol)
            since_hole = (rig.feed.status()[f"symbol.{symbol}.last_closed_ms"] - max(missing)) // MINUTE_MS
            assert rig.feed.window_is_clean(symbol, since_hole)  # the candles after the hole
            assert not rig.feed.window_is_clean(symbol, since_hole + 1)  # one more reaches into it
        finally:
            ExchangeWithHoles.missing = set()


async def test_under_the_supervisor_it_is_healthy_and_stops_promptly() -> None:
    from aegis.supervisor import Supervisor

    async with SimServer(SimConfig(speed=SPEED)) as server:
        clock = Clock(speed=SPEED, start_ms=server.sim.clock.now_ms())
        state = StateStore(max_candles=1000)
        async with BinanceRest(server.rest_url, DEMO_API_KEY, DEMO_API_SECRET, clock) as rest:
            config = MarketSettings(history_candles=HISTORY, max_candles=1000, stale_after_s=300)
            feed = MarketFeed(config, SYMBOLS, rest, server.ws_url, state, clock)
            supervisor = Supervisor(clock)
            supervisor.spawn("market", feed.run, critical=True)
            await asyncio.wait_for(feed.wait_ready(), timeout=15)
            assert supervisor.problems() == [] and feed.problems() == []
            started = time.monotonic()
            assert await supervisor.stop(timeout_s=5.0)
            assert time.monotonic() - started < 2.0
            counts = [conn.messages for conn in feed.connections]
            await asyncio.sleep(0.2)  # two exchange minutes: nothing may arrive any more
            assert [conn.messages for conn in feed.connections] == counts
