"""Fuzzing the stream frames through the engine's own decode paths: a bad frame is a counted skip.

Market: ``WsConnection`` wired as ``MarketFeed`` wires it (``parse_kline_tick`` into
``feed.on_message``), then the feed's single writer into a ``StateStore``. User: ``WsConnection``
wired as ``UserStream`` wires it (``frames.decode`` into its queue), then its consumer and applier.
Frames enter at ``WsConnection._deliver``, where the socket pump hands them over: the transport
adds nothing to parsing and is tested in tests/binance/test_ws.py.

Bad frames are truncated, oversized, deeply nested, wrong-typed, of unknown event types or plain
garbage. Properties: nothing raises out of the handlers and nothing logs a traceback; each bad
frame is counted once (``parse_errors``, ``unknown_events``, ``unknown_symbol``); and the good
frames among them, repeated or reordered, leave the store exactly as the good frames alone do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger

from aegis.account import frames as user_frames
from aegis.account.applier import UserEventApplier
from aegis.account.stream import UserStream
from aegis.binance.errors import ParseError
from aegis.binance.parse import parse_kline_tick, parse_user_event, tick_candle
from aegis.binance.ws import WsConnection
from aegis.clock import Clock
from aegis.config import MarketSettings
from aegis.domain import MINUTE_MS, UserEvent
from aegis.market.feed import MarketFeed
from aegis.state import StateStore
from aegis.state.store import snapshot_to_builtins
from tests.binance.test_parse_fuzz import json_values
from tests.harness import until
from tests.logstate import restored_logging
from tests.test_market import SYMBOL, c, frame, m
from tests.userstream_payloads import algo_update, open_payloads


def examples(n: int) -> int:
    """``n`` under the suite's profile (100 examples by default); as many more under a wider one
    (``pytest --hypothesis-profile=explore``: 20x)."""
    return max(1, n * settings.default.max_examples // 100)


FUZZ = settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- bad frames ------------------------------------------------------------------------------------

OVERSIZED = [
    b'{"a":' * 20_000,  # nested deeper than the interpreter's stack
    b"[" * 20_000,
    b'{"e":"ORDER_TRADE_UPDATE","E":1,"o":"' + b"x" * 1_000_000 + b'"}',
    b'{"stream":"btcusdt@kline_1m","data":{"E":1,"k":"' + b"9" * 1_000_000 + b'"}}',
    b" " * 1_000_000,
]


def dumps(value: Any) -> bytes:
    """JSON text of any drawn value (orjson refuses integers beyond 64 bits; Binance might not)."""
    return json.dumps(value, ensure_ascii=False).encode()


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path in a JSON document (the document itself included)."""
    yield prefix
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in children:
        yield from paths(child, (*prefix, key))


def replaced(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: replaced(doc[head], rest, new)}
    return [replaced(x, rest, new) if i == head else x for i, x in enumerate(doc)]


@st.composite
def wrong_typed(draw: st.DrawFn, good: bytes) -> bytes:
    """A good frame with one value (anywhere) replaced by an arbitrary JSON value, or one key dropped."""
    doc = orjson.loads(good)
    path = draw(st.sampled_from(list(paths(doc))))
    if path and isinstance(path[-1], str) and draw(st.booleans()):
        owner = doc
        for key in path[:-1]:
            owner = owner[key]
        parent = replaced(doc, path[:-1], {k: v for k, v in owner.items() if k != path[-1]})
        return dumps(parent)
    return dumps(replaced(doc, path, draw(json_values)))


def bad_frames(goods: list[bytes], rejected: Callable[[bytes], bool]) -> st.SearchStrategy[bytes]:
    """Frames the decoder must refuse (``rejected`` keeps only those, for wrong-typed ones)."""
    good = st.sampled_from(goods)
    return st.one_of(
        good.flatmap(lambda g: st.integers(0, len(g) - 1).map(lambda n: g[:n])),  # truncated
        st.sampled_from(OVERSIZED),
        st.binary(max_size=40),
        json_values.map(dumps),
        st.fixed_dictionaries({"e": st.text(max_size=12), "E": st.integers(0, 2**40)}).map(orjson.dumps),
        good.flatmap(wrong_typed),
    ).filter(rejected)


def interleave(draw: st.DrawFn, goods: list[bytes], bads: list[bytes]) -> list[bytes]:
    """``bads`` inserted at random places in ``goods``, order of each kept."""
    out = list(goods)
    for bad in bads:
        out.insert(draw(st.integers(0, len(out))), bad)
    return out


@contextlib.contextmanager
def captured_log() -> Iterator[list[str]]:
    lines: list[str] = []
    with restored_logging():
        logger.remove()
        logger.add(lines.append, level="DEBUG", format="{level} {message}\n{exception}")
        yield lines


def no_traceback(lines: list[str]) -> None:
    text = "".join(lines)
    for sign in ("Traceback", "handler failed", "decoder failed"):
        assert sign not in text, text[:2000]


# --- market ----------------------------------------------------------------------------------------


class NoRest:
    """The feed must not need REST here: its track is warm and every good candle is next in line."""

    async def klines(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("no REST in this test")


def feed_skips(raw: bytes) -> bool:
    """Whether the feed must skip ``raw``: not a kline, a closed one with no valid candle or off the
    minute, another symbol."""
    try:
        tick = parse_kline_tick(raw)
        if tick.k.x:
            tick_candle(tick)
    except ParseError:
        return True
    return tick.k.x and (tick.k.s != SYMBOL or tick.k.t % MINUTE_MS != 0)


def market_goods(n: int) -> list[bytes]:
    return [frame(SYMBOL, m(i), closed=True) for i in range(n)]


@st.composite
def market_script(draw: st.DrawFn) -> tuple[list[bytes], int, list[bytes]]:
    """(frames, good closed candles, bad frames): goods in order, some repeated later, bads anywhere."""
    n = draw(st.integers(1, 4))
    goods = market_goods(n)
    stream: list[bytes] = []
    for g in goods:
        stream.append(g)
        if draw(st.booleans()):  # a repeat now or later: a duplicate, or out of order and already stored
            stream.append(draw(st.sampled_from(stream)))
    stream.append(frame(SYMBOL, m(n), closed=False))  # a forming update: the last price, no candle
    bads = draw(st.lists(bad_frames(market_goods(2), feed_skips), max_size=4))
    return interleave(draw, stream, bads), n, bads


def warm_feed(state: StateStore) -> tuple[MarketFeed, WsConnection[Any]]:
    """A feed whose warm-up stored up to minute -1, and a connection wired as the feed wires its own."""
    feed = MarketFeed(MarketSettings(), [SYMBOL], NoRest(), "ws://127.0.0.1:9", state, Clock())  # type: ignore[arg-type]
    track = feed.tracks[0]
    track.warmed = track.ready = True
    track.last_open = track.stored_last = m(-1)
    conn = WsConnection(
        "ws://127.0.0.1:9/market", parse_kline_tick, feed.on_message, Clock(), name="market-0"
    )
    return feed, conn


@FUZZ
@given(market_script())
async def test_bad_market_frames_are_counted_skips_and_every_good_candle_is_stored(
    script: tuple[list[bytes], int, list[bytes]],
) -> None:
    sequence, n, bads = script
    state = StateStore()
    feed, conn = warm_feed(state)
    writer = asyncio.create_task(feed._writer())  # the feed's single writer, without its connections
    try:
        with captured_log() as lines:
            for raw in sequence:
                conn._deliver(raw)
            await feed.flush()
    finally:
        writer.cancel()
    no_traceback(lines)
    assert conn.handler_errors == 0
    skipped = conn.parse_errors + feed.bad_candles + feed.unknown_symbol
    assert skipped == len(bads), (skipped, bads)
    assert list(state.candles(SYMBOL)) == [c(i) for i in range(n)]  # as if the bad frames never came
    assert feed.last_closed_ms(SYMBOL) == m(n - 1)
    feed.last_price(SYMBOL)  # whatever text a forming update left, reading it does not raise


@FUZZ
@given(st.lists(st.sampled_from(market_goods(2)).flatmap(wrong_typed), min_size=1, max_size=6))
async def test_wrong_typed_kline_frames_never_escape_the_feed(sequence: list[bytes]) -> None:
    """Whatever a mutated frame turns into (skip, forming update, other symbol, odd candle), it is one of them."""
    feed, conn = warm_feed(StateStore())
    with captured_log() as lines:
        for raw in sequence:
            conn._deliver(raw)
    no_traceback(lines)
    assert conn.handler_errors == 0 and conn.messages == len(sequence)
    feed.last_price(SYMBOL)


# --- user stream -----------------------------------------------------------------------------------

USER_GOODS = [orjson.dumps(p) for p in [*open_payloads(), algo_update(9, "NEW")]]


def user_rejected(raw: bytes) -> bool:
    return user_frames.decode(raw)[1] != "event"


@st.composite
def user_script(draw: st.DrawFn) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(frames, goods as sent, bad frames): goods in any order with repeats, bads anywhere."""
    goods = draw(st.permutations(USER_GOODS))
    goods += draw(st.lists(st.sampled_from(USER_GOODS), max_size=3))  # repeats (a rotation overlap)
    bads = draw(st.lists(bad_frames(USER_GOODS, user_rejected), max_size=4))
    return interleave(draw, goods, bads), goods, bads


class NoKeys:
    async def create_listen_key(self) -> str:
        raise AssertionError("no listenKey in this test")


def user_view(state: StateStore) -> tuple[Any, ...]:
    snap = snapshot_to_builtins(state.snapshot())
    snap.pop("version", None)
    snap.pop("streams", None)
    return snap, state.recent_fills()


async def reference_view(goods: list[bytes]) -> tuple[Any, ...]:
    state = StateStore()
    applier = UserEventApplier(state)
    for raw in goods:
        event = parse_user_event(raw)
        assert event is not None
        await applier.apply(event)
    return user_view(state)


@FUZZ
@given(user_script())
async def test_bad_user_frames_are_counted_skips_and_every_good_event_is_applied(
    script: tuple[list[bytes], list[bytes], list[bytes]],
) -> None:
    sequence, goods, bads = script
    state = StateStore()
    stream = UserStream(NoKeys(), "ws://127.0.0.1:9", state, Clock())  # type: ignore[arg-type]
    conn: WsConnection[UserEvent | None] = WsConnection(
        "ws://127.0.0.1:9/private", stream._decode, stream._on_message, Clock(), name="user#1"
    )
    consumer = asyncio.create_task(stream._consume())  # the stream's consumer, without its connection
    counters = stream.applier.counters

    def all_applied() -> bool:
        return stream.events == len(goods) and (
            counters.applied + counters.duplicates + counters.stale + counters.ignored == len(goods)
        )

    try:
        with captured_log() as lines:
            for raw in sequence:
                conn._deliver(raw)
            await until(all_applied, 5.0, "every good event applied")
    finally:
        consumer.cancel()
    no_traceback(lines)
    status = stream.status()
    assert conn.handler_errors == 0 and conn.parse_errors == 0  # the stream's decoder catches its own
    assert status["parse_errors"] + status["unknown_events"] == len(bads)  # type: ignore[operator]
    assert status["apply_errors"] == 0
    assert user_view(state) == await reference_view(goods)  # as if the bad frames never came


@FUZZ
@given(st.lists(st.sampled_from(USER_GOODS).flatmap(wrong_typed), min_size=1, max_size=6))
async def test_wrong_typed_user_frames_are_events_or_counted_skips(sequence: list[bytes]) -> None:
    stream = UserStream(NoKeys(), "ws://127.0.0.1:9", StateStore(), Clock())  # type: ignore[arg-type]
    conn: WsConnection[UserEvent | None] = WsConnection(
        "ws://127.0.0.1:9/private", stream._decode, stream._on_message, Clock(), name="user#1"
    )
    consumer = asyncio.create_task(stream._consume())
    try:
        with captured_log() as lines:
            for raw in sequence:
                conn._deliver(raw)
            await until(lambda: stream._queue.empty(), 5.0, "queue drained")
            await asyncio.sleep(0.1)  # the last event's apply
    finally:
        consumer.cancel()
    no_traceback(lines)
    assert conn.handler_errors == 0 and conn.parse_errors == 0
    assert stream.events + stream.parse_errors + stream.unknown_events == len(sequence)
    assert stream.apply_errors == 0


async def test_frames_of_a_symbol_not_traded_leave_no_last_price() -> None:
    """A stream carrying other symbols (a shared connection, a misrouted frame) does not grow the feed's memory."""
    feed, conn = warm_feed(StateStore())
    for i in range(3):
        conn._deliver(frame("ETHUSDT", m(i), closed=False))
        conn._deliver(frame("ETHUSDT", m(i), closed=True))
    conn._deliver(frame(SYMBOL, m(0), closed=False))
    assert feed.unknown_symbol == 3 and feed.updates == 4
    assert feed.last_price("ETHUSDT") is None and feed.last_price(SYMBOL) is not None
