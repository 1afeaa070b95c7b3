"""MarketFeed end to end: its I/O against the simulator over loopback HTTP and WebSocket, on virtual time.

The proof is the same in every case: GET /state/candles/{SYMBOL} from an ops endpoint over the
engine's StateStore equals the simulator's own GET /fapi/v1/klines over the same range, field for
field, and reaches the candle the exchange closed last. So every closed candle is there, once, in
order, and nothing was invented. The simulator runs at speed 1 on the test's virtual clock, so an
exchange minute costs only the CPU its frames take, and what the feed sees does not depend on the
machine's load. Every per-candle decision (gap, duplicate, order, hole, dirty window) is also
tested directly on ``SymbolTrack`` in tests/test_market.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from loguru import logger

from aegis.binance import BinanceRest, Priority
from aegis.domain import MINUTE_MS, Candle
from aegis.supervisor import Supervisor
from tests.harness import T_START_MS, until
from tests.rigs import MARKET_SYMBOLS as SYMBOLS
from tests.rigs import MarketRig, market_rig

HISTORY = 60
# The minute the simulator starts in (T_START_MS is half a minute into it).
START_MINUTE = T_START_MS - T_START_MS % MINUTE_MS


@pytest.fixture(autouse=True)
def _quiet_sim_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="aegis.sim")


# --- warm-up ------------------------------------------------------------------------------------


async def test_warm_up_then_a_healthy_stream_keeps_the_store_equal_to_the_exchange() -> None:
    heard: list[tuple[str, int]] = []
    async with market_rig(start=False) as rig:
        rig.feed.add_listener(lambda symbol, open_ms: heard.append((symbol, open_ms)))
        rig.start()
        await rig.ready()
        stats = rig.feed.backfill.stats
        # The plan: one request per symbol, limit 60 (weight 1), for exactly the closed history.
        assert stats.requests == len(SYMBOLS) and stats.weight == len(SYMBOLS), stats
        assert stats.by_limit == {HISTORY: len(SYMBOLS)}, stats
        assert rig.feed.status()["rest_weight_warmup"] == len(SYMBOLS)
        await rig.assert_complete()
        for symbol in SYMBOLS:
            stored = await rig.stored_rows(symbol)
            assert len(stored) == HISTORY and stored[-1][0] == START_MINUTE - MINUTE_MS  # the forming one is not there
            assert rig.feed.window_is_clean(symbol, HISTORY) and not rig.feed.window_is_clean(symbol, HISTORY + 1)

        await rig.minutes(3)  # a healthy stream: closed candles are appended, with no REST at all
        await rig.assert_complete()
        assert stats.requests == len(SYMBOLS)
        assert [len(await rig.stored_rows(s)) for s in SYMBOLS] == [HISTORY + 3] * len(SYMBOLS)
        newest = rig.exchange_last_closed()  # listeners hear of each stored candle
        assert sorted(heard[-len(SYMBOLS):]) == sorted((s, newest) for s in SYMBOLS)

        status = rig.feed.status()  # flat scalars, per symbol and in total
        assert all(v is None or isinstance(v, str | int | float | bool) for v in status.values())
        assert status["symbols"] == status["ready"] == len(SYMBOLS) and status["connected"] == 1
        assert status["updates"] > 0 and all(rig.feed.last_price(s) is not None for s in SYMBOLS)  # open-candle frames
        assert status["duplicates"] == status["out_of_order"] == status["gaps"] == 0
        for symbol in SYMBOLS:
            assert status[f"symbol.{symbol}.last_closed_ms"] == rig.exchange_last_closed()
            assert status[f"symbol.{symbol}.holes"] == 0
        assert (await rig.health())[0] == 200
        market = (await rig.state_json())["streams"]["market"]
        assert market["ready"] == len(SYMBOLS) and market["symbol.BTCUSDT.ready"] is True


async def test_warm_up_of_1000_candles_costs_one_request_of_weight_5() -> None:
    async with market_rig(("BTCUSDT",), history=1000) as rig:
        stats = rig.feed.backfill.stats
        assert stats.by_limit == {1000: 1} and stats.weight == 5
        await rig.assert_complete()
        assert len(await rig.stored_rows("BTCUSDT")) == 1000


async def test_many_symbols_warm_up_concurrently_and_independently() -> None:
    async with market_rig() as probe:
        listed = await probe.rest.exchange_info()
    symbols = tuple(sorted(s for s, f in listed.symbols.items() if f.trading))[:40]
    async with market_rig(symbols, history=120) as rig:
        assert all(rig.feed.is_ready(s) for s in symbols)
        assert [len(rig.state.candles(s)) for s in symbols] == [120] * len(symbols)
        assert rig.feed.backfill.stats.weight == 40 * 2  # one limit-120 request each
        assert rig.feed.backfill.stats.by_limit == {120: 40}


async def test_stream_candles_closing_during_the_warm_up_wait_and_follow_in_order() -> None:
    # The exchange starts 5 s before a minute closes and its klines answers take 8 s (under the
    # adapter's 10 s timeout): that minute closes on the stream while the warm-up is in flight.
    async with market_rig(start=False, sim={"start_ms": START_MINUTE + 55_000}) as rig:
        await rig.admin.inject("latency", ms=8_000, seconds=1, path="/fapi/v1/klines")
        rig.start()
        await until(lambda: rig.feed.status()["closed"] >= len(SYMBOLS), 8.0, "a close during the warm-up")
        assert not any(rig.feed.is_ready(s) for s in SYMBOLS)
        assert rig.feed.status()["pending"] >= len(SYMBOLS)  # held until the history is stored
        await rig.ready()
        await rig.assert_complete()
        status = rig.feed.status()
        assert rig.feed.backfill.stats.requests == len(SYMBOLS)  # they followed the history: no gap to fetch
        assert status["gaps"] == 0 and status["duplicates"] == 0


async def test_a_symbol_the_exchange_rejects_is_reported_and_does_not_block_the_others() -> None:
    async with market_rig(("BTCUSDT", "NOPEUSDT"), start=False) as rig:
        rig.start()
        await until(lambda: rig.feed.is_ready("BTCUSDT"), 60.0, "BTCUSDT ready")
        await until(lambda: bool(rig.feed.status()["symbol.NOPEUSDT.error"]), 60.0, "NOPEUSDT refused")
        assert not rig.feed.is_ready("NOPEUSDT")
        problems = rig.feed.problems()
        assert any("NOPEUSDT" in p and "Invalid symbol" in p for p in problems), problems
        assert any("1 of 2 symbols not warmed up" in p for p in problems), problems
        await rig.minutes(2)
        assert rig.caught_up("BTCUSDT")


async def test_the_feed_logs_its_warm_up_end_once_then_a_status_line() -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO")
    try:
        async with market_rig(("BTCUSDT", "ETHUSDT")) as rig:
            await rig.minutes(2)  # the status line is logged a minute after the warm-up
    finally:
        logger.remove(sink)
    assert len([line for line in lines if "market warm-up done: 2 symbols" in line]) == 1
    assert any("market  2/2 symbols  last closed" in line and "holes 0" in line for line in lines)


# --- the live stream ----------------------------------------------------------------------------


async def test_a_paused_stream_leaves_a_gap_that_is_filled_from_rest_before_the_newer_candle() -> None:
    async with market_rig() as rig:
        requests = rig.feed.backfill.stats.requests
        await rig.admin.inject("pause_market", candles=3)
        await rig.minutes(5)
        await rig.assert_complete()
        status = rig.feed.status()
        assert status["gaps"] == len(SYMBOLS) and status["gaps_backfilled"] == 3 * len(SYMBOLS), status
        assert rig.feed.backfill.stats.requests == requests + len(SYMBOLS)  # one request per gap
        assert status["reconnects"] == 0


async def test_duplicated_and_reordered_events_are_stored_once_in_order() -> None:
    async with market_rig() as rig:
        # Six frames a minute per symbol: these counts span two or more candle closes of every symbol.
        await rig.admin.inject("duplicate_market", count=30)
        await rig.minutes(3)
        await rig.admin.inject("reorder_market", count=45)
        await rig.minutes(4)
        assert [f["status"] for f in await rig.admin.faults()] == ["done", "done"]
        await rig.assert_complete()
        status = rig.feed.status()
        assert status["duplicates"] >= 1 and status["out_of_order"] >= 1, status


# --- reconnects ---------------------------------------------------------------------------------


async def test_dropped_connections_leave_no_hole() -> None:
    async with market_rig() as rig:
        for _ in range(3):
            await rig.admin.inject("drop_ws", scope="market")
            await rig.minutes(1.5)
        await rig.assert_complete()
        assert rig.feed.status()["reconnects"] >= 3


async def test_symbols_split_across_connections_all_recover_from_a_drop() -> None:
    async with market_rig(streams_per_connection=2) as rig:
        status = rig.feed.status()
        assert status["connections"] == 2
        assert (status["conn.market-0.streams"], status["conn.market-1.streams"]) == (2, 1)  # each symbol once
        await rig.admin.inject("drop_ws", scope="market")
        await rig.minutes(2)
        await rig.assert_complete()
        status = rig.feed.status()
        assert status["conn.market-0.reconnects"] >= 1 and status["conn.market-1.reconnects"] >= 1
        assert status["symbol.XRPUSDT.reconnects"] == status["conn.market-1.reconnects"]


async def test_a_reconnect_after_a_long_outage_fetches_the_whole_interval() -> None:
    async with market_rig() as rig:
        await rig.admin.inject("drop_ws", scope="market")
        await rig.admin.inject("clock_jump", ms=3 * 60 * MINUTE_MS)  # three hours pass on the exchange
        await rig.minutes(3)
        await rig.assert_complete()
        status = rig.feed.status()
        assert status["gaps_backfilled"] >= 180 * len(SYMBOLS) and status["holes"] == 0
        for symbol in SYMBOLS:
            assert len(await rig.stored_rows(symbol)) >= HISTORY + 180


async def test_a_frozen_market_socket_is_detected_as_stale_reconnected_and_backfilled() -> None:
    """freeze_ws leaves the TCP connection up while the simulator sends nothing at all (no klines,
    pings or pongs): an open socket does not prove events flow, the staleness watchdog must."""
    # Staleness at 30 s (the default), so the watchdog speaks before a missing pong (60 s + 30 s) does.
    async with market_rig(stale_after_s=30.0) as rig:
        await rig.assert_complete()
        assert rig.feed.status()["reconnects"] == 0
        await rig.admin.inject("freeze_ws", scope="market")
        assert [f["hits"] for f in await rig.admin.faults()] == [1]  # the feed's one connection froze
        took = await until(lambda: rig.feed.status()["reconnects"] >= 1, 600.0, "frozen socket replaced")
        assert 30 - 1e-6 <= took < 60  # by the watchdog, within its limit
        conn = rig.feed.connections[0]
        assert conn.last_disconnect_reason.startswith("stale: no message"), conn.last_disconnect_reason
        await rig.assert_complete()
        status = rig.feed.status()
        assert status["gaps_backfilled"] >= 3 and status["holes"] == 0, status
        assert all(rig.feed.in_sync(s) for s in SYMBOLS)


async def test_a_restarted_feed_fetches_what_closed_while_it_was_down() -> None:
    async with market_rig() as rig:
        await rig.stop()
        await rig.admin.inject("clock_jump", ms=45 * MINUTE_MS)
        rig.start()  # as the supervisor would
        await rig.assert_complete()
        assert rig.feed.status()["gaps_backfilled"] >= 45 * len(SYMBOLS)


async def test_a_429_storm_during_warm_up_delays_it_but_loses_nothing() -> None:
    async with market_rig(start=False) as rig:
        await rig.admin.inject("rate_limit", seconds=2, path="/fapi/v1/klines")
        rig.start()
        await rig.ready()
        stats = rig.feed.backfill.stats
        assert stats.rate_limited >= 1
        assert stats.rate_limited <= len(SYMBOLS) * 2, "the governor must hold requests, not hammer"
        await rig.assert_complete()


# --- holes the exchange cannot fill -------------------------------------------------------------


class ExchangeWithHoles(BinanceRest):
    """The simulator's REST, except that the exchange "has no candles" for the minutes in ``missing``.

    The simulator has every minute by construction; this is how a gap Binance itself cannot fill
    (an outage on its side) reaches the feed over the real adapter path.
    """

    missing: set[int]
    asked: list[tuple[int, int]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.missing = set()
        self.asked = []

    async def klines(
        self,
        symbol: str,
        interval: str = "1m",
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
        priority: Priority = Priority.BACKFILL,
    ) -> list[Candle]:
        rows = await super().klines(symbol, interval, start_ms, end_ms, limit, priority)
        self.asked.append((start_ms or 0, end_ms or 0))
        return [c for c in rows if c.open_time_ms not in self.missing]


def holes_rest(rig: MarketRig) -> ExchangeWithHoles:
    assert isinstance(rig.rest, ExchangeWithHoles)
    return rig.rest


async def hole_in_the_stream(rig: MarketRig) -> set[int]:
    """Two minutes the exchange never has and the stream skips too; returns their open times."""
    forming = rig.exchange_last_closed() + MINUTE_MS
    missing = {forming + MINUTE_MS, forming + 2 * MINUTE_MS}
    holes_rest(rig).missing |= missing
    await rig.admin.inject("pause_market", candles=4)
    await rig.minutes(6)
    await until(lambda: rig.feed.status()["holes"] >= len(SYMBOLS), 600.0, "holes recorded")
    return missing


async def test_a_gap_the_exchange_cannot_fill_is_recorded_exposed_and_never_filled_in() -> None:
    async with market_rig(rest_class=ExchangeWithHoles) as rig:
        missing = await hole_in_the_stream(rig)
        summary = (await rig.state_json())["candles"]
        for symbol in SYMBOLS:
            holes = summary[symbol]["holes"]
            assert holes == [{"first_open_ms": min(missing), "last_open_ms": max(missing)}], holes
            assert rig.feed.holes(symbol) == ((min(missing), max(missing)),)
            stored = await rig.stored_rows(symbol)
            exchange = await rig.exchange_rows(symbol, stored[0][0], stored[-1][0])
            assert stored == [row for row in exchange if row[0] not in missing]
        # Confirmed once more before being declared: REST can lag the stream.
        covering = [a for a, b in holes_rest(rig).asked if a <= min(missing) <= b]
        assert len(covering) == 2 * len(SYMBOLS), holes_rest(rig).asked
        assert rig.feed.backfill.stats.weight_by_purpose.get("confirm", 0) >= len(SYMBOLS)
        # No strategy runs on a window with the hole in it, until it has scrolled out.
        symbol = SYMBOLS[0]
        await until(lambda: rig.feed.in_sync(symbol), 60.0, "in sync after the hole")
        since_hole = (rig.feed.status()[f"symbol.{symbol}.last_closed_ms"] - max(missing)) // MINUTE_MS
        assert rig.feed.window_is_clean(symbol, since_hole)  # the candles after the hole
        assert not rig.feed.window_is_clean(symbol, since_hole + 1)  # one more reaches into it
        assert not rig.feed.may_evaluate(symbol, since_hole + 1)
        await rig.minutes(4)
        assert rig.feed.window_is_clean(symbol, since_hole + 4)
        assert not rig.feed.window_is_clean(symbol, since_hole + 5)


async def test_dirty_windows_may_be_evaluated_when_the_operator_says_so() -> None:
    async with market_rig(rest_class=ExchangeWithHoles, skip_dirty_windows=False) as rig:
        await hole_in_the_stream(rig)
        symbol = SYMBOLS[0]
        await until(lambda: rig.feed.in_sync(symbol), 60.0, "in sync after the hole")
        assert not rig.feed.window_is_clean(symbol, 10)
        assert rig.feed.may_evaluate(symbol, 10)


async def test_holes_inside_the_history_are_recorded_but_the_time_before_listing_is_not() -> None:
    listed = START_MINUTE - 20 * MINUTE_MS  # the symbol's first candle on the exchange
    inside = START_MINUTE - 10 * MINUTE_MS
    async with market_rig(("BTCUSDT",), rest_class=ExchangeWithHoles, start=False) as rig:
        holes_rest(rig).missing = set(range(START_MINUTE - 100 * MINUTE_MS, listed, MINUTE_MS)) | {inside}
        rig.start()
        await rig.ready()
        rows = await rig.stored_rows("BTCUSDT")
        assert rows[0][0] == listed
        assert rig.feed.holes("BTCUSDT") == ((inside, inside),)
        assert rig.feed.is_ready("BTCUSDT")


# --- under the supervisor -----------------------------------------------------------------------


async def test_under_the_supervisor_it_is_healthy_and_stops_promptly() -> None:
    async with market_rig(start=False) as rig:
        supervisor = Supervisor(rig.clock)
        supervisor.spawn("market", rig.feed.run, critical=True)
        await until(lambda: all(rig.feed.is_ready(s) for s in SYMBOLS), 60.0, "warm-up under the supervisor")
        assert supervisor.problems() == [] and rig.feed.problems() == []
        loop = asyncio.get_running_loop()
        stopping = loop.time()
        assert await supervisor.stop(timeout_s=5.0)
        assert loop.time() - stopping < 1.0
        counts = [conn.messages for conn in rig.feed.connections]
        await rig.minutes(2)  # two exchange minutes: nothing may arrive any more
        assert [conn.messages for conn in rig.feed.connections] == counts
