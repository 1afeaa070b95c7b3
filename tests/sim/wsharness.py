"""A bare aiohttp app carrying only the stream, listenKey and fault modules, on a real loopback port.

It lets the WebSocket side be tested without the exchange core: tests publish on the Bus
themselves, exactly as the core does, and talk to the server over real sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from aegis.sim import control, faults, listenkeys, streams, userstream
from aegis.sim.bus import Bus, Payload
from aegis.sim.clock import SimClock
from aegis.sim.errors import BinanceError, bad_api_key
from aegis.sim.wsconn import WsLimits

API_KEY = "test-key"
MINUTE_MS = 60_000


def kline_event(symbol: str, open_ms: int, *, closed: bool, close: str = "30280.40", event_ms: int | None = None) -> Payload:
    """A kline payload shaped like the recorded one (fixtures/binance/ws_kline_combined.json)."""
    return {
        "e": "kline",
        "E": event_ms if event_ms is not None else open_ms + (59_999 if closed else 1_000),
        "s": symbol,
        "k": {
            "t": open_ms,
            "T": open_ms + 59_999,
            "s": symbol,
            "i": "1m",
            "f": 100,
            "L": 200,
            "o": "30205.60",
            "c": close,
            "h": "30281.00",
            "l": "30192.10",
            "v": "955.412",
            "n": 101,
            "x": closed,
            "q": "28893669.27360",
            "V": "624.864",
            "Q": "18898615.54900",
            "B": "0",
        },
    }


@dataclass
class Harness:
    clock: SimClock
    bus: Bus
    hub: streams.MarketHub
    keys: listenkeys.ListenKeys
    book: faults.FaultBook
    session: aiohttp.ClientSession
    port: int
    watched: list[str]
    orders: list[tuple[str, dict[str, str], bool]] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def inject(self, kind: str, **params: Any) -> int:
        async with self.session.post(f"{self.url}/_sim/faults", json={"kind": kind, **params}) as resp:
            body = await resp.json()
            assert resp.status == 200, body
            return int(body["id"])

    async def faults(self) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.url}/_sim/faults") as resp:
            rows: list[dict[str, Any]] = await resp.json()
            return rows

    async def listen_key(self, method: str = "POST", api_key: str = API_KEY) -> tuple[int, dict[str, Any]]:
        async with self.session.request(method, f"{self.url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": api_key}) as resp:
            return resp.status, await resp.json()

    async def settle(self) -> None:
        """Let the writers flush what was just published."""
        for _ in range(5):
            await asyncio.sleep(0)
        await asyncio.sleep(0.02)


async def recv_json(ws: aiohttp.ClientWebSocketResponse, wait: float = 2.0) -> Any:
    msg = await ws.receive(timeout=wait)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return orjson.loads(msg.data)


async def silent(ws: aiohttp.ClientWebSocketResponse, wait: float = 0.2) -> bool:
    """True if nothing arrives within ``wait`` seconds."""
    try:
        msg = await ws.receive(timeout=wait)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected message {msg!r}")


@asynccontextmanager
async def harness(speed: float = 1.0, limits: WsLimits | None = None) -> AsyncIterator[Harness]:
    clock = SimClock(speed=speed, start_ms=1_700_000_000_000)
    bus = Bus()
    watched: list[str] = []
    app = web.Application()
    hub = streams.MarketHub(clock, watched.append, limits)
    streams.add_market_routes(app, hub)
    keys = listenkeys.ListenKeys(clock, limits)

    def account(api_key: str) -> object:
        if api_key not in (API_KEY, "other-key"):
            raise bad_api_key()
        return object()

    userstream.mount(app, keys, account)
    state: dict[str, Any] = {}

    def new_order(api_key: str, params: dict[str, str], *, emit_events: bool = True) -> dict[str, Any]:
        if params.get("quantity") == "0":
            raise BinanceError(400, -4003, "Quantity less than or equal to zero.")
        state["h"].orders.append((api_key, params, emit_events))
        return {"orderId": len(state["h"].orders), "clientOrderId": params["newClientOrderId"], "status": "FILLED"}

    book = faults.FaultBook(clock, app)
    faults.mount(app, book)
    control.mount_trade(app, new_order)

    async def order_route(request: web.Request) -> web.Response:
        state["h"].executed.append(request.method)
        return web.json_response({"orderId": len(state["h"].executed), "status": "NEW"})

    app.router.add_route("*", "/fapi/v1/order", order_route)
    app.router.add_get("/_sim/streams", streams.streams_stats)
    async def time_route(_: web.Request) -> web.Response:
        return await _time(clock)

    app.router.add_get("/fapi/v1/time", time_route)
    bus.on_kline(hub.on_kline)
    bus.on_user_event(keys.on_user_event)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:
        h = Harness(clock, bus, hub, keys, book, session, port, watched)
        state["h"] = h
        try:
            yield h
        finally:
            await runner.cleanup()


async def _time(clock: SimClock) -> web.Response:
    return web.json_response({"serverTime": clock.now_ms()})
