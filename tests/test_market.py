"""The market feed's decisions, candle by candle, on the pure ``SymbolTrack`` (no loop, no I/O).

``SymbolTrack`` decides for each closed candle from the stream and each REST range that comes
back what happens to it; ``MarketFeed`` only carries those decisions out (REST requests, store
writes). So the rules are tested here directly, with the feed's part of each story spelled out
in comments, and the feed's I/O (the warm-up plan and its weight, gaps fetched from REST, holes
recorded, reconnect catch-up, dirty windows) end to end against the simulator in
tests/test_market_e2e.py. Also here: the kline frame decode and what the feed logs for an operator.
"""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from aegis.binance.errors import ParseError
from aegis.binance.parse import parse_kline_tick, tick_candle
from aegis.domain import MINUTE_MS, Candle
from aegis.market.backfill import BackfillStats
from aegis.market.symbol import Job, SymbolTrack, Verdict, hole_ranges
from aegis.market.view import FeedLog, FeedSummary

SYMBOL = "BTCUSDT"
T0 = 1_780_000_000_000 - 1_780_000_000_000 % MINUTE_MS  # a minute boundary
NOW = 0.0  # the monotonic time a candle is queued at (only /health's "waiting since" reads it)


def m(n: int) -> int:
    """Open time ``n`` minutes after T0."""
    return T0 + n * MINUTE_MS


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


def c(n: int) -> Candle:
    return exchange_candle(SYMBOL, m(n))


def opens(candles: list[Candle]) -> list[int]:
    return [x.open_time_ms for x in candles]


def warmed(last: int = -1, history: int = 30) -> SymbolTrack:
    """A track after its warm-up stored ``history`` candles ending at minute ``last``, as the feed
    leaves it: REST range committed, then the store confirmed the writes and the ready flag."""
    track = SymbolTrack(SYMBOL)
    first = last - history + 1
    ops = track.plan_commit([c(i) for i in range(first, last + 1)], m(first), m(last), leading=False, trailing=False)
    assert [opens(op) for op in ops if isinstance(op, list)] == [[m(i) for i in range(first, last + 1)]]
    track.warmed = True
    confirm(track, ops)
    track.ready = True
    return track


def confirm(track: SymbolTrack, ops: list[list[Candle] | tuple[int, int]]) -> None:
    """What the feed's single writer records once the store took the candles."""
    for op in ops:
        if isinstance(op, list):
            track.stored += len(op)
            track.stored_last = op[-1].open_time_ms


# --- warm-up ------------------------------------------------------------------------------------


def test_a_new_symbol_needs_its_warm_up_first_and_is_not_ready_or_clean() -> None:
    track = SymbolTrack(SYMBOL)
    assert track.next_job() is Job.WARM_UP
    assert not track.in_sync() and not track.window_is_clean(1)


def test_the_warm_up_stores_exactly_the_history_and_its_window_is_clean() -> None:
    track = warmed(last=-1, history=30)
    assert track.last_open == m(-1) and track.stored == 30 and track.holes == []
    assert track.next_job() is None and track.in_sync()
    assert track.window_is_clean(30)
    assert not track.window_is_clean(31)  # not enough history for that window


def test_stream_candles_closing_during_the_warm_up_wait_and_follow_it_in_order() -> None:
    track = SymbolTrack(SYMBOL)
    track.repairing = True  # the warm-up request is in flight
    assert track.on_closed(c(0), NOW) is Verdict.QUEUED
    assert track.on_closed(c(1), NOW) is Verdict.QUEUED
    assert track.pending_since == NOW
    # The warm-up answer ends before them (it was planned before they closed).
    ops = track.plan_commit([c(i) for i in range(-30, 0)], m(-30), m(-1), leading=False, trailing=False)
    track.warmed = True
    assert len(ops) == 1 and track.last_open == m(-1)
    assert track.next_job() is Job.DRAIN
    run = track.drain_step()
    assert isinstance(run, list) and opens(run) == [m(0), m(1)] and track.last_open == m(1)
    assert track.pending == {} and track.next_job() is None


# --- the live stream ----------------------------------------------------------------------------


def test_consecutive_closed_candles_are_stored_at_once_without_rest() -> None:
    track = warmed()
    assert [track.on_closed(c(i), NOW) for i in range(5)] == [Verdict.STORE] * 5
    assert track.last_open == m(4) and track.next_job() is None and track.gaps == 0


def test_a_gap_is_fetched_from_rest_before_the_newer_candle_is_stored() -> None:
    track = warmed()
    assert track.on_closed(c(2), NOW) is Verdict.QUEUED  # m0 and m1 never came
    assert track.next_job() is Job.DRAIN
    assert track.drain_step() == (m(0), m(1))  # the feed fetches exactly this range
    assert track.gaps == 1
    fetched = track.merge_pending([c(0), c(1)], m(0), m(1))
    ops = track.plan_commit(fetched, m(0), m(1), leading=True, trailing=True)
    assert [opens(op) for op in ops if isinstance(op, list)] == [[m(0), m(1)]] and track.holes == []
    run = track.drain_step()
    assert isinstance(run, list) and opens(run) == [m(2)]
    assert track.last_open == m(2) and track.next_job() is None


def test_duplicates_and_reordered_events_are_dropped_or_merged_and_counted() -> None:
    track = warmed()
    verdicts = [track.on_closed(c(i), NOW) for i in (0, 0, 2, 1, 3, 3)]
    assert verdicts == [
        Verdict.STORE,
        Verdict.DUPLICATE,
        Verdict.QUEUED,  # ahead of m1
        Verdict.OUT_OF_ORDER,  # late, but it fills the gap: merged by open time
        Verdict.QUEUED,
        Verdict.DUPLICATE,
    ]
    run = track.drain_step()
    assert isinstance(run, list) and opens(run) == [m(1), m(2), m(3)]  # each once, in order
    assert (track.duplicates, track.out_of_order, track.gaps) == (2, 1, 0)


def test_a_late_candle_arriving_during_the_gap_fill_is_merged_not_doubled() -> None:
    track = warmed()
    track.on_closed(c(2), NOW)
    assert track.drain_step() == (m(0), m(1))
    track.repairing = True  # REST is still answering when m1 arrives from the stream
    assert track.on_closed(c(1), NOW) is Verdict.OUT_OF_ORDER and m(1) in track.pending
    fetched = track.merge_pending([c(0), c(1)], m(0), m(1))
    assert opens(fetched) == [m(0), m(1)] and m(1) not in track.pending
    track.plan_commit(fetched, m(0), m(1), leading=True, trailing=True)
    run = track.drain_step()
    assert isinstance(run, list) and opens(run) == [m(2)]


def test_a_pending_candle_that_rest_already_covered_is_discarded() -> None:
    track = warmed()
    track.on_closed(c(2), NOW)
    track.plan_commit([c(0), c(1), c(2)], m(0), m(2), leading=True, trailing=False)  # a catch-up got there first
    assert track.drain_step() is None and track.pending == {}


def test_an_open_time_off_the_minute_is_malformed_and_dropped() -> None:
    track = warmed()
    odd = exchange_candle(SYMBOL, m(0) + 1_000)
    assert track.on_closed(odd, NOW) is Verdict.OFF_MINUTE
    assert track.pending == {} and track.closed == 0


def test_nothing_is_clean_while_a_gap_is_pending_or_being_repaired() -> None:
    track = warmed()
    track.on_closed(c(2), NOW)
    assert not track.in_sync() and not track.window_is_clean(1)
    track.pending.clear()
    track.repairing = True
    assert not track.in_sync() and not track.window_is_clean(1)


# --- reconnects ---------------------------------------------------------------------------------


def test_after_a_reconnect_the_missed_interval_comes_first_and_the_stream_repeat_is_dropped() -> None:
    track = warmed()
    track.catch_up = True  # set by the feed on a reconnect
    track.on_closed(c(95), NOW)  # the new connection's first candle, while the catch-up runs
    assert track.next_job() is Job.CATCH_UP  # before draining what the stream queued
    track.catch_up = False
    first, last = track.last_open + MINUTE_MS, m(89)  # what had closed by server time
    assert first == m(0)
    ops = track.plan_commit([c(i) for i in range(90)], first, last, leading=True, trailing=False)
    assert [len(op) for op in ops if isinstance(op, list)] == [90] and track.holes == []
    assert track.next_job() is Job.DRAIN
    assert track.drain_step() == (m(90), m(94))  # the rest of the gap before the queued candle
    track.plan_commit([c(i) for i in range(90, 95)], m(90), m(94), leading=True, trailing=True)
    assert opens(track.drain_step()) == [m(95)]  # type: ignore[arg-type]
    later = SymbolTrack(SYMBOL, last_open=m(89))  # a stream that repeats what REST already gave
    assert later.on_closed(c(89), NOW) is Verdict.ALREADY_STORED and later.already_stored == 1
    assert later.on_closed(c(90), NOW) is Verdict.STORE


def test_job_order_is_warm_up_then_catch_up_then_drain() -> None:
    track = SymbolTrack(SYMBOL, catch_up=True)
    track.queue(c(0), NOW)
    assert track.next_job() is Job.WARM_UP
    track.warmed = True
    assert track.next_job() is Job.CATCH_UP
    track.catch_up = False
    assert track.next_job() is Job.DRAIN
    track.pending.clear()
    assert track.next_job() is None


# --- holes the exchange cannot fill -------------------------------------------------------------


def test_a_gap_the_exchange_cannot_fill_becomes_a_recorded_hole_before_the_next_candle() -> None:
    track = warmed()
    track.on_closed(c(0), NOW)
    track.on_closed(c(3), NOW)
    assert track.drain_step() == (m(1), m(2))
    ops = track.plan_commit([], m(1), m(2), leading=True, trailing=True)  # REST has nothing (twice)
    assert ops == [(m(1), m(2))] and track.holes == [(m(1), m(2))]
    assert track.last_open == m(2)  # decided: never filled, never asked again
    run = track.drain_step()
    assert isinstance(run, list) and opens(run) == [m(3)]


def test_holes_are_placed_between_the_candles_around_them() -> None:
    track = warmed()
    ops = track.plan_commit([c(0), c(3)], m(0), m(4), leading=True, trailing=True)
    assert [opens(op) if isinstance(op, list) else op for op in ops] == [
        [m(0)],
        (m(1), m(2)),
        [m(3)],
        (m(4), m(4)),  # a real candle follows the range (trailing): also a hole
    ]


def test_a_window_with_a_hole_is_dirty_until_the_hole_has_scrolled_out() -> None:
    track = warmed()
    track.on_closed(c(0), NOW)
    confirm(track, [[c(0)]])
    track.on_closed(c(3), NOW)
    track.drain_step()
    ops = track.plan_commit([], m(1), m(2), leading=True, trailing=True)
    run = track.drain_step()
    assert isinstance(run, list)
    confirm(track, [*ops, run])
    assert track.window_is_clean(1)  # m3 alone
    assert not track.window_is_clean(2)  # reaches into the hole
    for i in range(4, 8):
        assert track.on_closed(c(i), NOW) is Verdict.STORE
        confirm(track, [[c(i)]])
    assert track.window_is_clean(5)  # m3..m7
    assert not track.window_is_clean(6)


def test_the_time_before_a_symbol_was_listed_is_not_a_hole_but_a_gap_inside_the_history_is() -> None:
    listed = -20
    candles = [c(i) for i in range(listed, 0) if i != -10]
    track = SymbolTrack(SYMBOL)
    track.plan_commit(candles, m(-100), m(-1), leading=False, trailing=False)  # warm-up range
    assert track.holes == [(m(-10), m(-10))]


def test_hole_ranges_only_between_real_candles_unless_bounded() -> None:
    candles = [c(2), c(4)]
    first, last = m(0), m(6)
    inner = [(m(3), m(3))]
    assert hole_ranges(candles, first, last, leading=False, trailing=False) == inner
    assert hole_ranges(candles, first, last, leading=True, trailing=False) == [(m(0), m(1)), *inner]
    assert hole_ranges(candles, first, last, leading=True, trailing=True)[-1] == (m(5), last)
    assert hole_ranges([], first, last, leading=True, trailing=False) == []
    assert hole_ranges([], first, last, leading=True, trailing=True) == [(first, last)]


# --- decoding -----------------------------------------------------------------------------------


def frame(symbol: str, open_ms: int, *, closed: bool) -> bytes:
    k = exchange_candle(symbol, open_ms)
    data = {
        "e": "kline",
        "E": open_ms + (MINUTE_MS if closed else 1_000),
        "s": symbol,
        "k": {
            "t": open_ms, "T": open_ms + MINUTE_MS - 1, "s": symbol, "i": "1m", "f": 1, "L": 2,
            "o": str(k.open), "c": str(k.close), "h": str(k.high), "l": str(k.low), "v": str(k.volume),
            "n": k.trades, "x": closed, "q": str(k.quote_volume), "V": str(k.taker_buy_base),
            "Q": str(k.taker_buy_quote), "B": "0",
        },
    }  # fmt: skip
    return orjson.dumps({"stream": f"{symbol.lower()}@kline_1m", "data": data})


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


def test_the_feed_log_says_warm_up_progress_then_a_status_line() -> None:
    stats = BackfillStats()
    summary = FeedSummary(2, 0, 0, None, 0, 0, 0)
    log = FeedLog(lambda: summary, stats)
    assert log.warmup_text(summary).startswith("warm-up   0%  0/2 symbols")
    stats.planned_candles = stats.fetched_candles = 60
    assert log.warmup_text(summary).startswith("warm-up 100%")
    done = FeedSummary(2, 2, 2, T0, 0, 1, 0)
    text = FeedLog.status_text(done)
    assert text.startswith("market  2/2 symbols  last closed") and "holes 0  reconnects 1" in text
