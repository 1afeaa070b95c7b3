"""LeanWsConnection keeps WsConnection's promises with one pump per connection instead of a task per frame."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from aegis.binance.errors import ParseError
from aegis.binance.ws import ConnectEvent
from aegis.clock import Clock
from aegis.leanws import LeanWsConnection


class Server:
    """Sends ``frames`` to each new connection, then stays open and silent."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.connections = 0

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        for frame in self.frames:
            await ws.send_str(frame)
        async for _ in ws:
            pass
        return ws


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    srv = Server()
    app = web.Application()
    app.router.add_get("/ws", srv.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield srv, f"ws://127.0.0.1:{port}/ws"
    await runner.cleanup()


def decode(raw: str | bytes) -> int:
    text = raw if isinstance(raw, str) else raw.decode()
    if not text.isdigit():
        raise ParseError("not a number", raw)
    return int(text)


async def until(condition: Callable[[], bool], limit_s: float = 5.0) -> None:
    """Poll: the connection reports through counters and callbacks, not events."""
    async with asyncio.timeout(limit_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_frames_arrive_in_order_and_a_bad_one_is_skipped(server: tuple[Server, str]) -> None:
    srv, url = server
    srv.frames = ["1", "2", "oops", "3"]
    got: list[int] = []
    conn = LeanWsConnection(url, decode, got.append, Clock(), stale_after_s=None)
    conn.start()
    try:
        await until(lambda: len(got) == 3)
        assert got == [1, 2, 3]
        assert conn.parse_errors == 1 and conn.messages == 4
    finally:
        await conn.close()


async def test_a_silent_connection_is_replaced_and_the_owner_told(server: tuple[Server, str]) -> None:
    srv, url = server
    srv.frames = ["7"]
    events: list[ConnectEvent] = []
    conn = LeanWsConnection(
        url, decode, lambda _: None, Clock(speed=100.0), stale_after_s=5.0, on_connect=events.append
    )
    conn.start()
    try:
        await until(lambda: len(events) >= 2)  # 5 s of silence = 50 ms on the wall
        assert events[1].reconnect and events[1].reason.startswith("stale")
        assert srv.connections >= 2
    finally:
        await conn.close()


async def test_a_requested_reconnect_happens_at_once(server: tuple[Server, str]) -> None:
    _, url = server
    events: list[ConnectEvent] = []
    conn = LeanWsConnection(
        url, decode, lambda _: None, Clock(), stale_after_s=60.0, on_connect=events.append
    )
    conn.start()
    try:
        await until(lambda: len(events) == 1)
        conn.reconnect("rotate")
        await until(lambda: len(events) == 2, limit_s=2.0)
        assert events[1].reason == "rotate"
    finally:
        await conn.close()
