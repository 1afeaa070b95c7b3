"""MarketFeed logic on a scripted exchange: what the store ends up holding is what a user sees.

The stream side is driven by handing frames to ``on_message`` exactly as the WebSocket
connection does; REST is a fake exchange whose candles are a function of the open time,
minus the minutes it "does not have". End-to-end runs against the simulator live in
tests/test_market_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest

from aegis.binance.errors import ParseError, Rejected
from aegis.binance.parse import parse_kline_tick, tick_candle
from aegis.binance.ratelimit import Priority
from aegis.binance.ws import ConnectEvent
from aegis.config import MarketSettings
from aegis.domain import Candle
from aegis.market.feed import MarketFeed
from aegis.market.symbol import hole_ranges
from aegis.state.store import StateStore
from tests.factories import MINUTE_MS, StillClock

SYMBOL = "BTCUSDT"
T0 = 1_780_000_000_000 - 1_780_000_000_000 % MINUTE_MS  # a minute boundary


def exchange_candle(symbol: str, open_ms: int) -> Candle:
    """The exchange's candle for a minute: a pure function of the open time, distinct per minute."""
    k = open_ms // MINUTE_MS % 10_000
    price = Decimal(30_000) + Decimal(k) / 10
    return Candle(
        symbol,
        open_ms,
        price,
        price + 1,
        price - 1,
        price + Decimal("0.5"),
        Decimal("1.250"),
        open_ms + MINUTE_MS - 1,
        Decimal("37500.00000"),
        k + 1,
        Decimal("0.600"),
        Decimal("18000.00000"),
    )


class FakeExchange:
    """GET /fapi/v1/klines semantics: oldest first, the forming bar last, nothing from the future."""

    def __init__(self, clock: StillClock, missing: set[int] | None = None) -> None:
        self.clock = clock
        self.missing = missing or set()
        self.calls: list[tuple[str, int, int, int]] = []
        self.gate: asyncio.Event | None = None
        self.reject: set[str] = set()

    async def klines(
        self,
        symbol: str,
        interval: str = "1m",
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
        priority: Priority = Priority.BACKFILL,
    ) -> list[Candle]:
        assert start_ms is not None and end_ms is not None and priority is Priority.BACKFILL
        self.calls.append((symbol, start_ms, end_ms, limit))
        if symbol in self.reject:
            raise Rejected("Invalid symbol.", code=-1121, http_status=400)
        if self.gate is not None:
            await self.gate.wait()
        now = self.clock.now
        rows = []
        t = start_ms
        while t <= min(end_ms, now) and len(rows) < limit:
            if t not in self.missing:
                rows.append(exchange_candle(symbol, t))  # the current minute comes back half-formed
            t += MINUTE_MS
        return rows

    @property
    def weight(self) -> int:
        from aegis.binance.constants import klines_weight

        return sum(klines_weight(limit) for *_, limit in self.calls)


def frame(symbol: str, open_ms: int, *, closed: bool, event_ms: int | None = None) -> bytes:
    c = exchange_candle(symbol, open_ms)
    data = {
        "e": "kline",
        "E": event_ms if event_ms is not None else open_ms + (MINUTE_MS if closed else 1_000),
        "s": symbol,
        "k": {
            "t": open_ms,
            "T": open_ms + MINUTE_MS - 1,
            "s": symbol,
            "i": "1m",
            "f": 1,
            "L": 2,
            "o": str(c.open),
            "c": str(c.close),
            "h": str(c.high),
            "l": str(c.low),
            "v": str(c.volume),
            "n": c.trades,
            "x": closed,
            "q": str(c.quote_volume),
            "V": str(c.taker_buy_base),
            "Q": str(c.taker_buy_quote),
            "B": "0",
        },
    }
    return orjson.dumps({"stream": f"{symbol.lower()}@kline_1m", "data": data})


class Rig:
    def __init__(self, feed: MarketFeed, exchange: FakeExchange, clock: StillClock, state: StateStore) -> None:
        self.feed = feed
        self.exchange = exchange
        self.clock = clock
        self.state = state

    def send(self, symbol: str, open_ms: int, *, closed: bool = True) -> None:
        self.feed.on_message(parse_kline_tick(frame(symbol, open_ms, closed=closed)))

    def close_minute(self, symbol: str = SYMBOL) -> int:
        """Let the current minute close on the exchange and on the stream; returns its open time."""
        open_ms = self.clock.now - self.clock.now % MINUTE_MS
        self.clock.now = open_ms + MINUTE_MS + 100
        self.send(symbol, open_ms)
        return open_ms

    async def settle(self) -> None:
        for _ in range(50):
            await asyncio.sleep(0)
            busy = [s for s in self.feed._symbols.values() if s.repairing]
            if not busy and self.feed._writes.empty():
                break
        await self.feed.flush()

    def opens(self, symbol: str = SYMBOL) -> list[int]:
        return [c.open_time_ms for c in self.state.candles(symbol)]

    def expected(self, first: int, last: int, symbol: str = SYMBOL) -> list[Candle]:
        return [
            exchange_candle(symbol, t)
            for t in range(first, last + 1, MINUTE_MS)
            if t not in self.exchange.missing
        ]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    rig = await make_rig()
    yield rig
    await stop(rig)


async def make_rig(
    symbols: tuple[str, ...] = (SYMBOL,), history: int = 30, missing: set[int] | None = None, **config: Any
) -> Rig:
    clock = StillClock(T0 + 30_000)  # half way through the minute opening at T0
    exchange = FakeExchange(clock, missing)
    capacity = max(500, history)
    state = StateStore(max_candles=capacity)
    cfg = MarketSettings(history_candles=history, max_candles=capacity, **config)
    feed = MarketFeed(cfg, symbols, exchange, "ws://127.0.0.1:9", state, clock)
    rig = Rig(feed, exchange, clock, state)
    feed._writer_task = asyncio.create_task(feed._writer())  # type: ignore[attr-defined]
    return rig


async def stop(rig: Rig) -> None:
    rig.feed._writer_task.cancel()  # type: ignore[attr-defined]
    for task in rig.feed._repairs.values():
        task.cancel()
    await asyncio.sleep(0)


async def warm(rig: Rig) -> None:
    for symbol in rig.feed.symbols:
        rig.feed._kick(rig.feed._symbols[symbol])
    await rig.settle()


# --- warm-up ----------------------------------------------------------------------------------


async def test_warm_up_stores_exactly_the_history_of_closed_candles_in_one_cheap_request(rig: Rig) -> None:
    assert not rig.feed.is_ready(SYMBOL)
    await warm(rig)
    last_closed = T0 - MINUTE_MS
    assert [c for c in rig.state.candles(SYMBOL)] == rig.expected(last_closed - 29 * MINUTE_MS, last_closed)
    assert rig.feed.is_ready(SYMBOL)
    assert len(rig.exchange.calls) == 1 and rig.exchange.weight == 1  # limit 30 -> weight 1
    assert rig.feed.window_is_clean(SYMBOL, 30)
    assert not rig.feed.window_is_clean(SYMBOL, 31)  # not enough history for that window


async def test_warm_up_of_1000_candles_costs_one_request_of_weight_5() -> None:
    rig = await make_rig(history=1000)
    try:
        await warm(rig)
        assert len(rig.state.candles(SYMBOL)) == 1000
        assert [limit for *_, limit in rig.exchange.calls] == [1000]
        assert rig.exchange.weight == 5
    finally:
        await stop(rig)


async def test_the_still_forming_candle_is_never_stored(rig: Rig) -> None:
    await warm(rig)
    assert max(rig.opens()) < rig.clock.now - rig.clock.now % MINUTE_MS
    assert all(c.close_time_ms < rig.clock.now for c in rig.state.candles(SYMBOL))


async def test_stream_candles_arriving_during_warm_up_wait_and_follow_in_order(rig: Rig) -> None:
    rig.exchange.gate = asyncio.Event()
    rig.feed._kick(rig.feed._symbols[SYMBOL])
    await asyncio.sleep(0)
    first_live = rig.close_minute()  # T0 closes while the warm-up request is in flight
    second_live = rig.close_minute()
    rig.exchange.gate.set()
    await rig.settle()
    assert rig.opens()[-3:] == [first_live - MINUTE_MS, first_live, second_live]
    assert rig.state.candles(SYMBOL)[-2:] == tuple(rig.expected(first_live, second_live))
    assert rig.feed.is_ready(SYMBOL)


# --- the live stream --------------------------------------------------------------------------


async def test_open_candle_updates_move_the_last_price_but_never_enter_the_store(rig: Rig) -> None:
    await warm(rig)
    before = rig.opens()
    rig.send(SYMBOL, T0, closed=False)
    await rig.settle()
    assert rig.opens() == before
    assert rig.feed.last_price(SYMBOL) == exchange_candle(SYMBOL, T0).close
    assert rig.feed.updates == 1


async def test_consecutive_closed_candles_are_appended(rig: Rig) -> None:
    await warm(rig)
    calls = len(rig.exchange.calls)
    opens = [rig.close_minute() for _ in range(5)]
    await rig.settle()
    assert rig.opens()[-5:] == opens
    assert len(rig.exchange.calls) == calls  # no REST for a healthy stream


async def test_a_gap_is_filled_from_rest_before_the_newer_candle(rig: Rig) -> None:
    await warm(rig)
    rig.clock.now = T0 + 3 * MINUTE_MS + 100
    rig.send(SYMBOL, T0 + 2 * MINUTE_MS)  # T0 and T0+1m never came
    await rig.settle()
    assert rig.state.candles(SYMBOL)[-3:] == tuple(rig.expected(T0, T0 + 2 * MINUTE_MS))
    status = rig.feed.status()
    assert status["gaps"] == 1 and status["gaps_backfilled"] == 2 and status["holes"] == 0
    assert rig.exchange.calls[-1][1:] == (T0, T0 + 2 * MINUTE_MS - 1, 2)


async def test_duplicates_and_reordered_events_are_dropped_and_counted(rig: Rig) -> None:
    await warm(rig)
    rig.clock.now = T0 + 4 * MINUTE_MS + 100
    rig.send(SYMBOL, T0)
    rig.send(SYMBOL, T0)  # duplicate
    rig.send(SYMBOL, T0 + 2 * MINUTE_MS)  # ahead of T0+1m
    rig.send(SYMBOL, T0 + MINUTE_MS)  # late
    rig.send(SYMBOL, T0 + 3 * MINUTE_MS)
    rig.send(SYMBOL, T0 + 3 * MINUTE_MS)  # duplicate
    await rig.settle()
    opens = rig.opens()
    assert opens == sorted(set(opens)), "each candle once, in order"
    assert rig.state.candles(SYMBOL)[-4:] == tuple(rig.expected(T0, T0 + 3 * MINUTE_MS))
    assert rig.feed.status()["duplicates"] == 2
    assert rig.feed.status()["out_of_order"] == 1


async def test_a_late_candle_arriving_during_the_gap_fill_is_merged_not_doubled(rig: Rig) -> None:
    await warm(rig)
    rig.clock.now = T0 + 3 * MINUTE_MS + 100
    rig.exchange.gate = asyncio.Event()
    rig.send(SYMBOL, T0 + 2 * MINUTE_MS)
    await asyncio.sleep(0)
    rig.send(SYMBOL, T0 + MINUTE_MS)  # arrives while REST is still answering
    rig.exchange.gate.set()
    await rig.settle()
    assert rig.state.candles(SYMBOL)[-3:] == tuple(rig.expected(T0, T0 + 2 * MINUTE_MS))
    assert len(rig.opens()) == len(set(rig.opens()))


async def test_after_a_reconnect_the_missed_interval_is_fetched(rig: Rig) -> None:
    await warm(rig)
    rig.clock.now = T0 + 90 * MINUTE_MS + 10_000  # an hour and a half without a connection
    rig.feed._on_connect(0, ConnectEvent("market-0", 2, True, "stale", 5400.0))
    await rig.settle()
    assert rig.opens()[-91:] == list(range(T0 - MINUTE_MS, T0 + 90 * MINUTE_MS, MINUTE_MS))
    rig.send(SYMBOL, T0 + 89 * MINUTE_MS)  # the stream repeats the last one REST already gave us
    rig.send(SYMBOL, T0 + 90 * MINUTE_MS)
    rig.clock.now += MINUTE_MS
    await rig.settle()
    assert rig.opens()[-1] == T0 + 90 * MINUTE_MS
    assert len(rig.opens()) == len(set(rig.opens()))
    assert rig.feed.status()["holes"] == 0


# --- holes the exchange cannot fill -----------------------------------------------------------


async def test_a_gap_the_exchange_cannot_fill_becomes_a_recorded_hole_never_a_made_up_candle() -> None:
    missing = {T0 + MINUTE_MS, T0 + 2 * MINUTE_MS}
    rig = await make_rig(missing=missing)
    try:
        await warm(rig)
        rig.clock.now = T0 + 4 * MINUTE_MS + 100
        rig.send(SYMBOL, T0)
        rig.send(SYMBOL, T0 + 3 * MINUTE_MS)
        await rig.settle()
        assert rig.opens()[-2:] == [T0, T0 + 3 * MINUTE_MS]
        assert rig.feed.holes(SYMBOL) == ((T0 + MINUTE_MS, T0 + 2 * MINUTE_MS),)
        summary = rig.state.snapshot().candles[SYMBOL]
        assert [(h.first_open_ms, h.last_open_ms) for h in summary.holes] == [
            (T0 + MINUTE_MS, T0 + 2 * MINUTE_MS)
        ]
        assert rig.feed.status()["holes"] == 1
        # Confirmed once more before being declared: REST can lag the stream.
        assert sum(1 for _, start, *_ in rig.exchange.calls if start == T0 + MINUTE_MS) == 2
        # The strategy must not run on a window with the hole, until it has scrolled out.
        assert rig.feed.window_is_clean(SYMBOL, 1)
        assert not rig.feed.window_is_clean(SYMBOL, 2)
        assert not rig.feed.may_evaluate(SYMBOL, 2)
        for _ in range(4):
            rig.close_minute()
        await rig.settle()
        assert rig.feed.window_is_clean(SYMBOL, 5)
        assert not rig.feed.window_is_clean(SYMBOL, 6)
    finally:
        await stop(rig)


async def test_dirty_windows_may_be_evaluated_when_the_operator_says_so() -> None:
    rig = await make_rig(missing={T0}, skip_dirty_windows=False)
    try:
        await warm(rig)
        rig.clock.now = T0 + 2 * MINUTE_MS + 100
        rig.send(SYMBOL, T0 + MINUTE_MS)
        await rig.settle()
        assert not rig.feed.window_is_clean(SYMBOL, 3)
        assert rig.feed.may_evaluate(SYMBOL, 3)
    finally:
        await stop(rig)


async def test_holes_inside_the_history_are_recorded_but_the_time_before_listing_is_not() -> None:
    first_listed = T0 - 20 * MINUTE_MS
    missing = set(range(T0 - 100 * MINUTE_MS, first_listed, MINUTE_MS)) | {T0 - 10 * MINUTE_MS}
    rig = await make_rig(missing=missing)
    try:
        await warm(rig)
        assert rig.opens()[0] == first_listed
        assert rig.feed.holes(SYMBOL) == ((T0 - 10 * MINUTE_MS, T0 - 10 * MINUTE_MS),)
        assert rig.feed.is_ready(SYMBOL)
    finally:
        await stop(rig)


def test_hole_ranges_only_between_real_candles_unless_bounded() -> None:
    c = [exchange_candle(SYMBOL, T0 + i * MINUTE_MS) for i in (2, 4)]
    first, last = T0, T0 + 6 * MINUTE_MS
    inner = [(T0 + 3 * MINUTE_MS, T0 + 3 * MINUTE_MS)]
    assert hole_ranges(c, first, last, leading=False, trailing=False) == inner
    assert hole_ranges(c, first, last, leading=True, trailing=False) == [(T0, T0 + MINUTE_MS), *inner]
    assert hole_ranges(c, first, last, leading=True, trailing=True)[-1] == (T0 + 5 * MINUTE_MS, last)
    assert hole_ranges([], first, last, leading=True, trailing=False) == []
    assert hole_ranges([], first, last, leading=True, trailing=True) == [(first, last)]


# --- many symbols, failures, status ---------------------------------------------------------------


async def test_many_symbols_warm_up_concurrently_and_independently() -> None:
    symbols = tuple(f"S{i:03d}USDT" for i in range(40))
    rig = await make_rig(symbols=symbols, history=120)
    try:
        await warm(rig)
        for _ in range(20):
            await rig.settle()
        assert all(rig.feed.is_ready(s) for s in symbols)
        assert all(len(rig.state.candles(s)) == 120 for s in symbols)
        assert rig.exchange.weight == 40 * 2  # one limit-120 request each
    finally:
        await stop(rig)


async def test_a_symbol_the_exchange_rejects_is_reported_and_does_not_block_the_others() -> None:
    rig = await make_rig(symbols=(SYMBOL, "NOPEUSDT"))
    rig.exchange.reject.add("NOPEUSDT")
    rig.feed.started = True
    try:
        await warm(rig)
        assert rig.feed.is_ready(SYMBOL)
        assert not rig.feed.is_ready("NOPEUSDT")
        problems = rig.feed.problems()
        assert any("NOPEUSDT" in p and "Invalid symbol" in p for p in problems), problems
        assert any("1 of 2 symbols not warmed up" in p for p in problems), problems
    finally:
        await stop(rig)


async def test_status_is_flat_scalars_per_symbol_and_in_total(rig: Rig) -> None:
    await warm(rig)
    rig.send(SYMBOL, T0 - MINUTE_MS)
    status = rig.feed.status()
    assert all(v is None or isinstance(v, str | int | float | bool) for v in status.values())
    assert status["symbols"] == 1 and status["ready"] == 1
    assert status[f"symbol.{SYMBOL}.last_closed_ms"] == T0 - MINUTE_MS
    assert status[f"symbol.{SYMBOL}.holes"] == 0
    await rig.feed.publish_status()
    assert rig.state.snapshot().streams["market"]["symbol.BTCUSDT.ready"] is True


async def test_listeners_hear_about_stored_candles(rig: Rig) -> None:
    heard: list[tuple[str, int]] = []
    rig.feed.add_listener(lambda symbol, open_ms: heard.append((symbol, open_ms)))
    await warm(rig)
    opened = rig.close_minute()
    await rig.settle()
    assert heard[-1] == (SYMBOL, opened)


# --- decoding ---------------------------------------------------------------------------------


def test_one_decode_per_frame_and_decimals_only_for_a_closed_candle() -> None:
    update = parse_kline_tick(frame(SYMBOL, T0, closed=False))
    assert not update.k.x and isinstance(update.k.c, str)  # no Decimal built for an intermediate update
    closed = parse_kline_tick(frame(SYMBOL, T0, closed=True))
    assert closed.k.x and tick_candle(closed) == exchange_candle(SYMBOL, T0)


@pytest.mark.parametrize("raw", [b"{}", b'{"result":null,"id":1}', b"not json", b'{"data":{"E":1}}'])
def test_frames_that_are_not_klines_raise_parse_errors(raw: bytes) -> None:
    with pytest.raises(ParseError):
        parse_kline_tick(raw)


# --- what an operator sees ----------------------------------------------------------------------


async def test_the_feed_logs_warm_up_progress_and_its_end_once() -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO")
    rig = await make_rig(symbols=(SYMBOL, "ETHUSDT"))
    try:
        await warm(rig)
        done = [line for line in lines if "market warm-up done: 2 symbols" in line]
        assert len(done) == 1
    finally:
        logger.remove(sink)
        await stop(rig)


def test_hundreds_of_symbols_are_split_over_connections_each_symbol_once() -> None:
    symbols = tuple(f"SYM{i:04d}USDT" for i in range(1100))
    feed = MarketFeed(
        MarketSettings(), symbols, FakeExchange(StillClock(T0)), "ws://x", StateStore(), StillClock(T0)
    )
    groups = feed._group_symbols
    assert len(groups) >= 2
    assert all(len(g) <= 1024 for g in groups)
    assert sorted(s for g in groups for s in g) == sorted(symbols)
    assert {feed._symbols[s].connection for s in groups[-1]} == {len(groups) - 1}
