"""WsConnection.probe(): a ping answered proves the socket alive; a half-open one is caught."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aegis.binance.parse import parse_kline_frame
from aegis.binance.ws import WsConnection
from aegis.clock import Clock
from tests.harness import until


@pytest.fixture
async def base() -> AsyncIterator[str]:
    """/live answers pings; /frozen reads them and never answers (half-open, as freeze_ws)."""

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.PING and request.path == "/live/stream":
                await ws.pong(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/{route}/stream", handle)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    yield f"ws://127.0.0.1:{srv.port}"
    await srv.close()


def connection(url: str) -> WsConnection[object]:
    return WsConnection(
        url, parse_kline_frame, lambda _: None, Clock(), name="probe", stale_after_s=None,
        ping_interval_s=None, min_wall_timeout_s=0.0,
    )  # fmt: skip


async def test_a_live_connection_answers_the_probe(base: str) -> None:
    conn = connection(f"{base}/live/stream")
    conn.start()
    await until(lambda: conn.connected.is_set())
    try:
        assert await conn.probe(timeout_s=2.0)
        assert await conn.probe(timeout_s=2.0)  # again: each probe waits for its own pong
    finally:
        await conn.close()


async def test_a_half_open_connection_fails_the_probe_within_its_timeout(base: str) -> None:
    conn = connection(f"{base}/frozen/stream")
    conn.start()
    await until(lambda: conn.connected.is_set())
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert not await conn.probe(timeout_s=0.2)
        assert loop.time() - started == pytest.approx(0.2)  # exactly its timeout, in loop time
        assert conn.connected.is_set()  # the probe only reports; the owner decides to reconnect
    finally:
        await conn.close()


async def test_no_connection_fails_the_probe_at_once() -> None:
    conn = connection("ws://127.0.0.1:9/nowhere")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert not await conn.probe(timeout_s=5.0)
    assert loop.time() == started  # no waiting at all
