"""WsConnection against a small loopback aiohttp server (unit level; end-to-end uses aegis.sim)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aegis.binance.parse import parse_kline_frame
from aegis.binance.ws import (
    ConnectEvent,
    WsConnection,
    market_stream_url,
    split_streams,
    user_stream_url,
)
from aegis.clock import Clock
from aegis.domain import KlineEvent
from tests.binance.fixtures import raw
from tests.harness import until

KLINE = raw("ws_kline_combined.json").decode()

Behaviour = Callable[[web.WebSocketResponse, web.Request], Awaitable[None]]


class Server:
    """Each accepted connection runs the next behaviour (the last one repeats)."""

    def __init__(self) -> None:
        self.behaviours: list[Behaviour] = []
        self.connections = 0
        self.paths: list[str] = []
        self.received: list[tuple[float, str]] = []
        self.pongs: list[bytes] = []
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        self.connections += 1
        self.paths.append(request.path_qs)
        behaviour = self.behaviours[min(self.connections, len(self.behaviours)) - 1]
        await behaviour(ws, request)
        return ws

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"ws://127.0.0.1:{self.server.port}"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_get("/{tail:.*}", srv.handle)
    srv.server = TestServer(app, host="127.0.0.1")
    await srv.server.start_server()
    yield srv
    await srv.server.close()


async def send_then_close(ws: web.WebSocketResponse, _: web.Request) -> None:
    await ws.send_str(KLINE)
    await ws.close()


async def send_then_hold(ws: web.WebSocketResponse, _: web.Request) -> None:
    await ws.send_str(KLINE)
    async for _msg in ws:
        pass


async def silent(ws: web.WebSocketResponse, _: web.Request) -> None:
    async for _msg in ws:
        pass


def connection(
    url: str, sink: list[Any], events: list[ConnectEvent], clock: Clock | None = None, **kw: Any
) -> WsConnection[KlineEvent]:
    kw.setdefault("backoff_initial_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    kw.setdefault("min_wall_timeout_s", 0.0)
    return WsConnection(
        url, parse_kline_frame, sink.append, clock or Clock(), name="test", on_connect=events.append, **kw
    )


async def test_frames_are_decoded_into_kline_events_for_the_owner(server: Server) -> None:
    server.behaviours = [send_then_hold]
    sink: list[KlineEvent] = []
    events: list[ConnectEvent] = []
    conn = connection(market_stream_url(server.base, ["btcusdt@kline_1m"]), sink, events)
    conn.start()
    await until(lambda: len(sink) == 1)
    await conn.close()
    assert sink[0].candle.symbol == "BTCUSDT" and str(sink[0].candle.close) == "30280.40"
    assert server.paths == ["/market/stream?streams=btcusdt@kline_1m"]
    assert [e.reconnect for e in events] == [False]


async def test_a_dropped_connection_reconnects_and_the_owner_is_told(server: Server) -> None:
    server.behaviours = [send_then_close, send_then_hold]
    sink: list[KlineEvent] = []
    events: list[ConnectEvent] = []
    conn = connection(market_stream_url(server.base, ["btcusdt@kline_1m"]), sink, events)
    conn.start()
    await until(lambda: len(events) == 2 and len(sink) == 2)
    await conn.close()
    assert events[1].reconnect and events[1].connects == 2 and "closed by peer" in events[1].reason
    assert conn.reconnects == 1


async def test_a_silent_connection_is_declared_stale_and_replaced(server: Server) -> None:
    server.behaviours = [silent, send_then_hold]
    sink: list[KlineEvent] = []
    events: list[ConnectEvent] = []
    conn = connection(market_stream_url(server.base, ["btcusdt@kline_1m"]), sink, events, stale_after_s=5)
    conn.start()
    await until(lambda: len(sink) == 1)
    await conn.close()
    assert events[1].reason.startswith("stale")


async def test_on_an_accelerated_clock_staleness_never_shrinks_below_a_wall_floor(server: Server) -> None:
    server.behaviours = [silent]
    events: list[ConnectEvent] = []
    clock = Clock(speed=3600.0)  # 60 s of engine time would be 17 ms of wall time
    conn = connection(
        market_stream_url(server.base, ["a@kline_1m"]),
        [],
        events,
        clock,
        stale_after_s=60,
        min_wall_timeout_s=0.3,
    )
    conn.start()
    await until(conn.connected.is_set)
    await asyncio.sleep(0.2)
    assert conn.connects == 1  # a quiet 200 ms is not a dead network
    await until(lambda: conn.connects == 2, within=2)
    await conn.close()
    assert events[1].reason.startswith("stale")


async def test_connections_are_rotated_before_the_24h_cut(server: Server) -> None:
    server.behaviours = [send_then_hold]
    events: list[ConnectEvent] = []
    conn = connection(
        market_stream_url(server.base, ["a@kline_1m"]), [], events, stale_after_s=None, ping_interval_s=None
    )
    conn.start()
    took = await until(lambda: len(events) == 2, within=24 * 3600, step=60)  # virtual time: a day is free
    await conn.close()
    assert events[1].reason == "rotation before the 24 h cut"
    assert 23 * 3600 < took <= 23.5 * 3600 + 60


async def test_an_unparseable_frame_is_skipped_and_the_stream_goes_on(server: Server) -> None:
    async def garbage_then_kline(ws: web.WebSocketResponse, _: web.Request) -> None:
        await ws.send_str(
            '{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":"x"}}}'
        )
        await ws.send_str("not json at all")
        await ws.send_str(KLINE)
        async for _msg in ws:
            pass

    server.behaviours = [garbage_then_kline]
    sink: list[KlineEvent] = []
    events: list[ConnectEvent] = []
    conn = connection(market_stream_url(server.base, ["btcusdt@kline_1m"]), sink, events)
    conn.start()
    await until(lambda: len(sink) == 1)
    await conn.close()
    assert conn.parse_errors == 2 and conn.connects == 1


async def test_a_decoder_that_raises_anything_does_not_kill_the_connection(server: Server) -> None:
    server.behaviours = [send_then_hold]
    calls: list[str | bytes] = []

    def broken(data: str | bytes) -> KlineEvent:
        calls.append(data)
        raise KeyError("decoder bug")

    conn = WsConnection(market_stream_url(server.base, ["a@kline_1m"]), broken, print, Clock())
    task = conn.start()
    await until(lambda: len(calls) == 1)
    await asyncio.sleep(0.02)
    assert not task.done()  # the read loop is still alive
    await conn.close()
    assert conn.parse_errors == 1


async def test_sending_without_a_connection_is_a_retryable_adapter_error() -> None:
    from aegis.binance import Retryable

    conn = WsConnection("ws://127.0.0.1:9/market/stream?streams=a", parse_kline_frame, print, Clock())
    with pytest.raises(Retryable):
        await conn.send_json({"method": "SUBSCRIBE", "params": ["a"], "id": 1})


async def test_a_failing_handler_does_not_kill_the_connection(server: Server) -> None:
    async def two_frames(ws: web.WebSocketResponse, _: web.Request) -> None:
        await ws.send_str(KLINE)
        await ws.send_str(KLINE)
        async for _msg in ws:
            pass

    server.behaviours = [two_frames]
    seen: list[KlineEvent] = []

    def handler(event: KlineEvent) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("owner bug")

    conn = WsConnection(market_stream_url(server.base, ["a@kline_1m"]), parse_kline_frame, handler, Clock())
    conn.start()
    await until(lambda: len(seen) == 2)
    await conn.close()
    assert conn.handler_errors == 1 and conn.connects == 1


async def test_server_pings_are_answered_with_the_same_payload(server: Server) -> None:
    pongs: list[bytes] = []

    async def pinger(ws: web.WebSocketResponse, _: web.Request) -> None:
        await ws.ping(b"are-you-there")
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.PONG:
                pongs.append(msg.data)

    server.behaviours = [pinger]
    conn = connection(market_stream_url(server.base, ["a@kline_1m"]), [], [], ping_interval_s=None)
    conn.start()
    await until(lambda: pongs == [b"are-you-there"])
    await conn.close()


async def test_connect_failures_back_off_and_recover(server: Server) -> None:
    server.behaviours = [send_then_hold]
    sink: list[KlineEvent] = []
    events: list[ConnectEvent] = []
    port = server.server.port if server.server else 0
    conn = connection(f"ws://127.0.0.1:{port + 1}/market/stream?streams=a@kline_1m", sink, events)
    conn.start()
    await asyncio.sleep(0.05)
    assert conn.connects == 0
    conn.set_url(market_stream_url(server.base, ["a@kline_1m"]))
    await until(lambda: len(sink) == 1)
    await conn.close()
    assert events[0].connects == 1 and events[0].reason.startswith("connect failed")


async def test_set_url_moves_a_live_connection_to_the_new_key(server: Server) -> None:
    server.behaviours = [send_then_hold]
    sink: list[KlineEvent] = []
    events: list[ConnectEvent] = []
    conn = connection(user_stream_url(server.base, "key-1"), sink, events)
    conn.start()
    await until(lambda: len(sink) == 1)
    conn.set_url(user_stream_url(server.base, "key-2"))
    await until(lambda: len(sink) == 2)
    await conn.close()
    assert server.paths == ["/private/ws?listenKey=key-1", "/private/ws?listenKey=key-2"]
    assert events[1].reason == "url changed"


async def test_control_messages_are_paced_under_binance_limit(server: Server) -> None:
    server.behaviours = []
    stamps: list[float] = []

    async def recorder(ws: web.WebSocketResponse, _: web.Request) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                stamps.append(asyncio.get_running_loop().time())

    server.behaviours = [recorder]
    conn = connection(market_stream_url(server.base, ["a@kline_1m"]), [], [], max_sends_per_s=3)
    conn.start()
    await until(lambda: conn.connected.is_set())
    for i in range(7):
        await conn.send_json({"method": "SUBSCRIBE", "params": [f"s{i}@kline_1m"], "id": i})
    await until(lambda: len(stamps) == 7)
    await conn.close()
    for i in range(3, 7):
        assert stamps[i] - stamps[i - 3] >= 1.0  # never more than 3 in any one-second window


def test_streams_are_split_at_1024_per_connection_and_a_sane_url_length() -> None:
    names = [f"s{i:05d}@kline_1m" for i in range(2500)]
    groups = split_streams(names, max_chars=10**9)
    assert [len(g) for g in groups] == [1024, 1024, 452]
    assert [n for g in groups for n in g] == names
    short = split_streams(names, max_chars=4000)
    assert all(len("/".join(g)) <= 4000 for g in short)
    assert split_streams(["a", "a", "b"]) == [["a", "b"]]


def test_urls_use_the_current_routes() -> None:
    assert market_stream_url("wss://fstream.binance.com/", ["btcusdt@kline_1m", "ethusdt@kline_1m"]) == (
        "wss://fstream.binance.com/market/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m"
    )
    assert (
        user_stream_url("wss://fstream.binance.com", "abc")
        == "wss://fstream.binance.com/private/ws?listenKey=abc"
    )


async def test_a_refused_listen_key_is_never_written_to_the_log() -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    events: list[ConnectEvent] = []
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPUnauthorized()

    app.router.add_get("/{tail:.*}", handler)
    refusing = TestServer(app, host="127.0.0.1")
    await refusing.start_server()
    conn = connection(user_stream_url(f"ws://127.0.0.1:{refusing.port}", "TOPSECRETKEY"), [], events)
    conn.start()
    await until(lambda: any("connect failed" in line for line in lines))
    await conn.close()
    await refusing.close()
    logger.remove(sink)
    assert not any("TOPSECRETKEY" in line for line in lines)
