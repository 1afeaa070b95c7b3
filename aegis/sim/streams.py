"""WebSocket market streams of the simulator: routes, subscriptions and the kline fan-out hub.

Routes follow Binance's 2026 split: ``/market/ws/<stream>`` and ``/market/stream?streams=a/b``
carry klines; ``/public/...`` accepts the same requests but stays silent for klines (as Binance
does on the wrong prefix); the legacy ``/ws/<stream>`` and ``/stream?streams=`` still work for
older clients, and ``/ws/<listenKey>`` reaches the user data stream. Each kline event is
encoded once per stream name and the same bytes go to every subscriber's outbox.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiohttp import web

from aegis.sim import userstream
from aegis.sim.bus import Payload
from aegis.sim.clock import SimClock
from aegis.sim.listenkeys import LISTEN_KEYS, looks_like_listen_key
from aegis.sim.wsconn import WsConn, WsLimits, limits_from, prepare
from aegis.sim.wsrequests import WsRequestError, answer, string_params, wrap

log = logging.getLogger("aegis.sim.streams")

MAX_STREAMS = 1024

Event = tuple[str, Payload]


class KlineFilter(Protocol):
    """A market fault in the fan-out path: takes the events about to go out, returns what goes out."""

    done: bool

    def __call__(self, events: list[Event]) -> list[Event]: ...


@dataclass(eq=False)
class MarketConn:
    """A market-stream connection: ws (unwrapped) or combined mode, and its streams in order."""

    conn: WsConn
    combined: bool
    delivers_klines: bool
    streams: dict[str, str] = field(default_factory=dict)  # normalised name -> name as sent


def normalise(stream: str) -> str:
    """Binance stream names are case-insensitive before the '@'; the interval keeps its case (1m vs 1M)."""
    head, sep, tail = stream.partition("@")
    return f"{head.lower()}{sep}{tail}"


def kline_symbol(stream: str) -> str | None:
    """The exchange symbol a kline stream needs generated, or None for other streams."""
    head, _, tail = stream.partition("@")
    if tail.startswith("kline_"):
        return head.upper()
    if tail.startswith("continuousKline_") and head.endswith("_perpetual"):
        return head[: -len("_perpetual")].upper()
    return None


def continuous(event: Payload) -> Payload:
    """The ``continuous_kline`` form python-binance's kline_futures_socket listens to."""
    k = {key: value for key, value in event["k"].items() if key != "s"}
    return {"e": "continuous_kline", "E": event["E"], "ps": event["s"], "ct": "PERPETUAL", "k": k}


class MarketHub:
    """Subscriptions of every market connection and the kline fan-out."""

    def __init__(
        self,
        clock: SimClock,
        watch: Callable[[str], None],
        limits: WsLimits | None = None,
        unwatch: Callable[[str], None] | None = None,
    ) -> None:
        self.clock = clock
        self.limits = limits or WsLimits()
        self._watch = watch
        self._unwatch = unwatch
        # symbol -> number of (connection, kline stream) subscriptions that need it generated
        self._watched: dict[str, int] = {}
        # Insertion-ordered (dicts as ordered sets): frames go to connections in the order they
        # subscribed, not in an order set by their addresses, so a run replays the same.
        self._subs: dict[str, dict[MarketConn, None]] = {}
        self.conns: dict[MarketConn, None] = {}
        self.filters: list[KlineFilter] = []
        self.sent = 0
        self.drops: dict[str, int] = {}  # why connections were cut server-side (overflow, no pong...)

    @property
    def watched(self) -> frozenset[str]:
        """Symbols some connection has asked klines for (so the market generates them)."""
        return frozenset(self._watched)

    # -- subscriptions -------------------------------------------------------------------
    def subscribe(self, mc: MarketConn, streams: list[str]) -> None:
        fresh = [s for s in streams if normalise(s) not in mc.streams]
        if len(mc.streams) + len(fresh) > MAX_STREAMS:
            raise WsRequestError(2, f"Invalid request: too many streams (max {MAX_STREAMS})")
        for stream in fresh:
            name = normalise(stream)
            mc.streams[name] = stream
            if not mc.delivers_klines:
                continue
            symbol = kline_symbol(name)
            if symbol is None:
                continue
            self._subs.setdefault(name, {})[mc] = None
            self._watched[symbol] = self._watched.get(symbol, 0) + 1
            if self._watched[symbol] == 1:
                self._watch(symbol)

    def unsubscribe(self, mc: MarketConn, streams: list[str]) -> None:
        for stream in streams:
            name = normalise(stream)
            mc.streams.pop(name, None)
            subs = self._subs.get(name)
            if subs is None or mc not in subs:
                continue
            del subs[mc]
            if not subs:
                del self._subs[name]
            symbol = kline_symbol(name)
            if symbol is not None:
                self._release(symbol)

    def _release(self, symbol: str) -> None:
        left = self._watched.get(symbol, 0) - 1
        if left > 0:
            self._watched[symbol] = left
            return
        self._watched.pop(symbol, None)
        if self._unwatch is not None:
            self._unwatch(symbol)

    def detach(self, mc: MarketConn) -> None:
        self.unsubscribe(mc, list(mc.streams))
        self.conns.pop(mc, None)
        if mc.conn.dropped_reason is not None:
            reason = mc.conn.dropped_reason.split(":")[0]
            self.drops[reason] = self.drops.get(reason, 0) + 1

    # -- fan-out ---------------------------------------------------------------------------
    def on_kline(self, symbol: str, event: Payload) -> None:
        """Bus listener: never raises into the market loop that publishes."""
        try:
            self._publish(symbol, event)
        except Exception:
            log.exception("kline fan-out failed for %s", symbol)

    def _publish(self, symbol: str, event: Payload) -> None:
        """Run the fault filters, then fan out what is left."""
        events: list[Event] = [(symbol, event)]
        if self.filters:
            for flt in self.filters:
                if not flt.done:  # a fault cleared by DELETE must not act once more
                    events = flt(events)
            self.filters = [flt for flt in self.filters if not flt.done]
        for sym, ev in events:
            self.fanout(sym, ev)

    def fanout(self, symbol: str, event: Payload) -> None:
        interval = event["k"]["i"]
        low = symbol.lower()
        name = f"{low}@kline_{interval}"
        subs = self._subs.get(name)
        if subs:
            self._send(name, name, orjson.dumps(event), subs)
        cname = f"{low}_perpetual@continuousKline_{interval}"
        csubs = self._subs.get(cname)
        if csubs:
            self._send(cname, cname, orjson.dumps(continuous(event)), csubs)

    def _send(self, name: str, shown: str, raw: bytes, subs: dict[MarketConn, None]) -> None:
        combined: bytes | None = None
        for mc in list(subs):
            if mc.combined:
                if combined is None:
                    combined = wrap(shown, raw)
                mc.conn.send(combined)
            else:
                mc.conn.send(raw)
            self.sent += 1

    def stats(self) -> dict[str, Any]:
        """For GET /_sim/streams: who is connected and how much went out."""
        return {
            "connections": len(self.conns),
            "streams": {name: len(subs) for name, subs in sorted(self._subs.items())},
            "watched": sorted(self._watched),
            "sent": self.sent,
            "queued": sum(mc.conn.queued for mc in self.conns),
            "drops": dict(self.drops),
        }

    def drop_all(self, reason: str) -> int:
        """Abort every market connection (fault injection); returns how many."""
        victims = list(self.conns)
        for mc in victims:
            mc.conn.abort(reason)
        return len(victims)

    def freeze_all(self) -> int:
        """Make every market connection half-open (fault injection); returns how many."""
        for mc in self.conns:
            mc.conn.freeze()
        return len(self.conns)

    # -- requests on the socket ------------------------------------------------------------
    async def on_text(self, mc: MarketConn, text: str) -> None:
        """SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY."""
        answer(mc.conn, text, lambda req: self._apply(mc, req))

    def _apply(self, mc: MarketConn, req: dict[str, Any]) -> Any:
        method = req.get("method")
        params = req.get("params", [])
        if method == "SUBSCRIBE":
            self.subscribe(mc, string_params(params))
            return None
        if method == "UNSUBSCRIBE":
            self.unsubscribe(mc, string_params(params))
            return None
        if method == "LIST_SUBSCRIPTIONS":
            return list(mc.streams.values())
        if method == "SET_PROPERTY":
            if not (isinstance(params, list) and len(params) == 2 and params[0] == "combined"):
                raise WsRequestError(2, "Invalid request: unknown variable")
            if not isinstance(params[1], bool):
                raise WsRequestError(1, "Invalid value type: expected Boolean")
            mc.combined = params[1]
            return None
        if method == "GET_PROPERTY":
            if params != ["combined"]:
                raise WsRequestError(2, "Invalid request: unknown variable")
            return mc.combined
        raise WsRequestError(2, "Invalid request: unknown method")


# -- HTTP routes ---------------------------------------------------------------------------
MARKET_HUB = web.AppKey("aegis_sim_market_hub", MarketHub)


async def _serve_market(request: web.Request, streams: list[str], combined: bool, delivers: bool) -> web.StreamResponse:
    hub = request.app[MARKET_HUB]
    if len(streams) > MAX_STREAMS:
        raise web.HTTPBadRequest(text=f"too many streams (max {MAX_STREAMS})")
    ws = await prepare(request)
    conn = WsConn(ws, request, hub.clock, hub.limits, "market")
    mc = MarketConn(conn, combined=combined, delivers_klines=delivers)
    hub.conns[mc] = None
    try:
        hub.subscribe(mc, streams)

        async def on_text(_: WsConn, text: str) -> None:
            await hub.on_text(mc, text)

        await conn.run(on_text)
    finally:
        hub.detach(mc)
    return ws


def _path_streams(request: web.Request) -> list[str]:
    """``/ws/<stream>``: one stream name; ccxt's ``/market/ws/0`` index suffix names none."""
    tail = request.match_info.get("tail", "")
    return [s for s in tail.split("/") if "@" in s]


def _query_streams(request: web.Request) -> list[str]:
    return [s for s in request.query.get("streams", "").split("/") if s]


async def market_ws(request: web.Request) -> web.StreamResponse:
    return await _serve_market(request, _path_streams(request), combined=False, delivers=True)


async def market_stream(request: web.Request) -> web.StreamResponse:
    return await _serve_market(request, _query_streams(request), combined=True, delivers=True)


async def public_ws(request: web.Request) -> web.StreamResponse:
    return await _serve_market(request, _path_streams(request), combined=False, delivers=False)


async def public_stream(request: web.Request) -> web.StreamResponse:
    return await _serve_market(request, _query_streams(request), combined=True, delivers=False)


async def legacy_ws(request: web.Request) -> web.StreamResponse:
    """``/ws/<stream>`` for old clients, or ``/ws/<listenKey>`` for the old user-stream URL."""
    tail = request.match_info.get("tail", "")
    if looks_like_listen_key(tail):
        return await userstream.serve(request, [(tail, None)], combined=False, key_required=True)
    return await _serve_market(request, _path_streams(request), combined=False, delivers=True)


async def streams_stats(request: web.Request) -> web.Response:
    """GET /_sim/streams: market and user-stream connections, for tests and operators."""
    body = {"market": request.app[MARKET_HUB].stats(), "user": request.app[LISTEN_KEYS].stats()}
    return web.json_response(body)


def install(app: web.Application, sim: Any) -> None:
    """Add the market WebSocket routes and hub, the user data stream (listenKey REST + WS) and
    GET /_sim/streams (connections, subscriptions, listenKey states)."""
    limits = limits_from(sim.config.extra)
    hub = MarketHub(sim.clock, sim.market.watch, limits, unwatch=sim.market.unwatch)
    sim.bus.on_kline(hub.on_kline)
    add_market_routes(app, hub)
    userstream.install(app, sim, limits)
    app.router.add_get("/_sim/streams", streams_stats)


def add_market_routes(app: web.Application, hub: MarketHub) -> None:
    """Routes and shutdown only; split out so a test can mount the hub on a bare app."""
    app[MARKET_HUB] = hub

    async def _shutdown(_: web.Application) -> None:
        for mc in list(hub.conns):
            with contextlib.suppress(Exception):
                await mc.conn.ws.close()

    app.on_shutdown.append(_shutdown)
    router = app.router
    for prefix in ("/market", "/public", ""):
        ws_handler = {"/market": market_ws, "/public": public_ws, "": legacy_ws}[prefix]
        stream_handler = {"/market": market_stream, "/public": public_stream, "": market_stream}[prefix]
        router.add_get(f"{prefix}/ws", ws_handler)
        router.add_get(f"{prefix}/ws/{{tail:.*}}", ws_handler)
        router.add_get(f"{prefix}/stream", stream_handler)
