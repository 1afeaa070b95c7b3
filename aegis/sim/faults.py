"""Fault injection: the exchange misbehaving the way Binance does, on demand, over loopback HTTP.

``POST /_sim/faults {"kind": ..., ...}`` starts a fault and answers ``{"id": n, ...}``;
``GET /_sim/faults`` lists every fault with ``effective_ms`` (simulator ms), ``status``
(active | done | cleared), ``ended_ms`` and ``hits``; ``DELETE /_sim/faults/{id}`` ends a
lasting one. HTTP faults are an aiohttp middleware around the exchange's handlers (the /_sim/
admin routes are never faulted; WebSocket handshakes only by a fail_requests naming their
path); market-stream faults are filters in the kline fan-out; the rest act at once. ``POST /_sim/trade`` places an out-of-band MARKET
order, as if from the Binance app. ``aegis.sim.admin.SimAdmin`` wraps all of it.

Kinds and parameters (durations in ``seconds`` are simulator time; ``ms``/``hold_s`` delays are wall time):
- ``drop_ws`` scope=market|user|all [api_key]: abort those connections, no close frame.
- ``freeze_ws`` scope=market|user|all [api_key]: those connections go half-open: still
  connected, but nothing more goes out (no data, no pings, no pongs).
- ``pause_user`` [api_key] [seconds=S | count=N]: user-stream events are lost (the exchange
  state still changes, the sockets stay open) until S elapse, N events were lost, or DELETE.
- ``pause_market`` candles=N [symbols]: no kline events until N candles closed per symbol
  (the exchange still closes them: REST klines has them).
- ``duplicate_market`` count=N / ``reorder_market`` count=N (>= 2): the next N kline events
  twice / held and released in reverse order.
- ``expire_listen_key`` [api_key]: expire now (listenKeyExpired, close).
- ``fail_requests`` [path] [method] count=N status=503 code=-1008 [msg]: answer without executing.
  With a WebSocket path (``/market/stream``, ``/private/ws``...) it refuses the next N handshakes.
- ``unknown_outcome`` [path] [method] count=N mode=timeout|503|-1007 [hold_s=60] [status]: execute,
  then hang for hold_s, or answer 503/-1000 "Unknown error..." or 408/-1007 "Timeout waiting...".
- ``rate_limit`` seconds=S status=429|418 [path] [method]: -1003 with Binance's text and Retry-After.
- ``latency`` ms=M [seconds=S] [path] [method]: every response M ms late (until S or DELETE).
- ``clock_jump`` ms=M: move the exchange clock (the market is walked through the gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from aegis.sim.bus import Payload
from aegis.sim.clock import SimClock
from aegis.sim.errors import BinanceError
from aegis.sim.streams import MARKET_HUB, Event, KlineFilter, MarketHub
from aegis.sim.userstream import LISTEN_KEYS, ListenKeys

log = logging.getLogger("aegis.sim.faults")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNKNOWN_503_MSG = "Unknown error, please check your request or try again later."
TIMEOUT_1007_MSG = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
OVERLOADED_1008_MSG = "Server is currently overloaded with other requests. Please try again in a few minutes."
KINDS = (
    "drop_ws",
    "freeze_ws",
    "pause_user",
    "pause_market",
    "duplicate_market",
    "reorder_market",
    "expire_listen_key",
    "fail_requests",
    "unknown_outcome",
    "rate_limit",
    "latency",
    "clock_jump",
)


class FaultSpecError(ValueError):
    """A fault request the simulator cannot honour; answered with HTTP 400."""


@dataclass(eq=False)
class Fault:
    """One injected fault and what became of it (the GET /_sim/faults rows)."""

    id: int
    kind: str
    params: dict[str, Any]
    effective_ms: int
    status: str = "active"  # active | done | cleared
    ended_ms: int | None = None
    hits: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    def finish(self, now_ms: int, status: str = "done") -> None:
        if self.status == "active":
            self.status = status
            self.ended_ms = now_ms
            log.info("fault #%d %s %s at %d", self.id, self.kind, status, now_ms)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "params": self.params,
            "effective_ms": self.effective_ms,
            "status": self.status,
            "ended_ms": self.ended_ms,
            "hits": self.hits,
            **({"detail": self.detail} if self.detail else {}),
        }


# -- parameter helpers ------------------------------------------------------------------------
def _int(params: dict[str, Any], name: str, default: int | None = None, minimum: int | None = None) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultSpecError(f"{name} must be an integer")
    if minimum is not None and value < minimum:
        raise FaultSpecError(f"{name} must be >= {minimum}")
    return value


def _num(params: dict[str, Any], name: str, default: float | None = None) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultSpecError(f"{name} must be a non-negative number")
    return float(value)


def _choice(params: dict[str, Any], name: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = params.get(name, default)
    if value not in choices:
        raise FaultSpecError(f"{name} must be one of {', '.join(choices)}")
    return str(value)


def _api_key(params: dict[str, Any]) -> str | None:
    value = params.get("api_key")
    if value is not None and not isinstance(value, str):
        raise FaultSpecError("api_key must be a string")
    return value


def _symbols(params: dict[str, Any]) -> set[str] | None:
    value = params.get("symbols")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise FaultSpecError("symbols must be a list of strings")
    return {s.upper() for s in value}


# -- market-stream filters ---------------------------------------------------------------------
class PauseMarket:
    """Withhold kline events until N candles have closed for each symbol; the exchange still has them."""

    def __init__(self, fault: Fault, candles: int, symbols: set[str], clock: SimClock) -> None:
        self.fault = fault
        self.candles = candles
        # No symbol named and none streamed yet: pause each symbol as it first shows up.
        self.lazy = not symbols
        self.remaining = dict.fromkeys(symbols, candles)
        self.clock = clock
        self.done = False

    def __call__(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for symbol, event in events:
            if self.lazy and symbol not in self.remaining:
                self.remaining[symbol] = self.candles
            left = self.remaining.get(symbol, 0)
            if left <= 0:
                out.append((symbol, event))
                continue
            self.fault.hits += 1
            if event["k"]["x"]:
                self.remaining[symbol] = left - 1
        if self.remaining and all(v <= 0 for v in self.remaining.values()):
            self.done = True
            self.fault.finish(self.clock.now_ms())
        return out


class DuplicateMarket:
    """Send each of the next N kline events twice."""

    def __init__(self, fault: Fault, count: int, clock: SimClock) -> None:
        self.fault = fault
        self.left = count
        self.clock = clock
        self.done = False

    def __call__(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for ev in events:
            out.append(ev)
            if self.left > 0:
                out.append(ev)
                self.left -= 1
                self.fault.hits += 1
        if self.left <= 0:
            self.done = True
            self.fault.finish(self.clock.now_ms())
        return out


class ReorderMarket:
    """Hold the next N kline events and release them in reverse order."""

    def __init__(self, fault: Fault, count: int, clock: SimClock) -> None:
        self.fault = fault
        self.count = count
        self.held: list[Event] = []
        self.clock = clock
        self.done = False

    def __call__(self, events: list[Event]) -> list[Event]:
        if self.done:
            return events
        out: list[Event] = []
        for ev in events:
            if len(self.held) < self.count:
                self.held.append(ev)
                self.fault.hits += 1
                if len(self.held) == self.count:
                    out.extend(reversed(self.held))
                    self.held = []
                    self.count = 0
                    self.done = True
                    self.fault.finish(self.clock.now_ms())
            else:
                out.append(ev)
        return out

    def flush(self) -> list[Event]:
        """On DELETE: let what is held go, in order."""
        held, self.held, self.done = self.held, [], True
        return held


class PauseUser:
    """Lose user-stream events while the sockets stay open: a stream that is up but silent."""

    def __init__(self, fault: Fault, api_key: str | None, until_ms: int | None, count: int | None, clock: SimClock) -> None:
        self.fault = fault
        self.api_key = api_key
        self.until_ms = until_ms
        self.left = count
        self.clock = clock
        self.done = False

    def __call__(self, api_key: str, event: Payload) -> bool:
        if self.done:
            return False
        now = self.clock.now_ms()
        if self.until_ms is not None and now >= self.until_ms:
            self.done = True
            self.fault.finish(now)
            return False
        if self.api_key is not None and api_key != self.api_key:
            return False
        self.fault.hits += 1
        if self.left is not None:
            self.left -= 1
            if self.left <= 0:
                self.done = True
                self.fault.finish(now)
        return True


# -- HTTP faults -------------------------------------------------------------------------------
@dataclass(eq=False)
class HttpFault:
    """A fault applied to matching REST requests by the middleware."""

    fault: Fault
    path: str | None = None
    method: str | None = None
    count: int | None = None  # None = until it expires or is deleted
    until_ms: int | None = None

    def live(self, now_ms: int) -> bool:
        if self.fault.status != "active":
            return False
        if self.until_ms is not None and now_ms >= self.until_ms:
            self.fault.finish(now_ms)
            return False
        return self.count is None or self.count > 0

    def matches(self, request: web.Request) -> bool:
        return (self.path is None or request.path == self.path) and (
            self.method is None or request.method == self.method
        )

    def consume(self, now_ms: int) -> None:
        self.fault.hits += 1
        if self.count is not None:
            self.count -= 1
            if self.count <= 0:
                self.fault.finish(now_ms)


def _binance_error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


class FaultBook:
    """Every fault injected so far, and the machinery that applies the live ones."""

    def __init__(
        self,
        clock: SimClock,
        app: web.Application,
        new_order: Callable[..., dict[str, Any]] | None,
        jump: Callable[[int], None] | None = None,
    ) -> None:
        self.clock = clock
        self.app = app
        self.new_order = new_order
        # The exchange's own jump walks the market through the skipped time (closes, fills).
        self.jump = jump or clock.jump
        self.faults: list[Fault] = []
        self.http: dict[str, list[HttpFault]] = {"rate_limit": [], "fail": [], "unknown": [], "latency": []}
        self.filters: dict[int, KlineFilter] = {}
        self.mutes: dict[int, PauseUser] = {}
        self.shutting_down = asyncio.Event()
        self.default_hold_s = 60.0

    # -- injection -------------------------------------------------------------------------
    def inject(self, spec: dict[str, Any]) -> Fault:
        kind = spec.get("kind")
        if kind not in KINDS:
            raise FaultSpecError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        params = {k: v for k, v in spec.items() if k != "kind"}
        fault = Fault(len(self.faults) + 1, str(kind), params, self.clock.now_ms())
        getattr(self, f"_start_{kind}")(fault, params)
        self.faults.append(fault)
        log.warning("fault #%d %s injected at %d: %s", fault.id, kind, fault.effective_ms, params)
        return fault

    def clear(self, fault_id: int) -> Fault | None:
        fault = next((f for f in self.faults if f.id == fault_id), None)
        if fault is None:
            return None
        flt = self.filters.pop(fault_id, None)
        if isinstance(flt, ReorderMarket):
            hub = self._hub()
            for symbol, event in flt.flush():
                hub.fanout(symbol, event)
        if flt is not None:
            flt.done = True
        mute = self.mutes.pop(fault_id, None)
        if mute is not None:
            mute.done = True
        fault.finish(self.clock.now_ms(), "cleared")
        return fault

    def refresh(self) -> None:
        """Mark timed faults whose time is up as done, so the listing is current."""
        now = self.clock.now_ms()
        for group in self.http.values():
            group[:] = [hf for hf in group if hf.live(now)]
        for mute in self.mutes.values():
            if not mute.done and mute.until_ms is not None and now >= mute.until_ms:
                mute.done = True
                mute.fault.finish(now)

    def _hub(self) -> MarketHub:
        return self.app[MARKET_HUB]

    def _keys(self) -> ListenKeys:
        return self.app[LISTEN_KEYS]

    def _add_filter(self, fault: Fault, flt: KlineFilter) -> None:
        self.filters[fault.id] = flt
        self._hub().filters.append(flt)

    # one _start_<kind> per fault kind ---------------------------------------------------------
    def _start_drop_ws(self, fault: Fault, params: dict[str, Any]) -> None:
        scope = _choice(params, "scope", ("market", "user", "all"), "all")
        api_key = _api_key(params)
        dropped = 0
        if scope in ("market", "all"):
            dropped += self._hub().drop_all("fault drop_ws")
        if scope in ("user", "all"):
            dropped += self._keys().drop_all("fault drop_ws", api_key)
        fault.hits = dropped
        fault.finish(fault.effective_ms)

    def _start_freeze_ws(self, fault: Fault, params: dict[str, Any]) -> None:
        scope = _choice(params, "scope", ("market", "user", "all"), "all")
        api_key = _api_key(params)
        frozen = 0
        if scope in ("market", "all"):
            frozen += self._hub().freeze_all()
        if scope in ("user", "all"):
            frozen += self._keys().freeze_all(api_key)
        fault.hits = frozen
        fault.finish(fault.effective_ms)

    def _start_pause_user(self, fault: Fault, params: dict[str, Any]) -> None:
        until = fault.effective_ms + int(_num(params, "seconds") * 1000) if "seconds" in params else None
        count = _int(params, "count", minimum=1) if "count" in params else None
        mute = PauseUser(fault, _api_key(params), until, count, self.clock)
        self.mutes[fault.id] = mute
        self._keys().mutes.append(mute)

    def _start_pause_market(self, fault: Fault, params: dict[str, Any]) -> None:
        candles = _int(params, "candles", 1, minimum=1)
        symbols = _symbols(params) or set(self._hub().watched)
        self._add_filter(fault, PauseMarket(fault, candles, symbols, self.clock))

    def _start_duplicate_market(self, fault: Fault, params: dict[str, Any]) -> None:
        self._add_filter(fault, DuplicateMarket(fault, _int(params, "count", 1, minimum=1), self.clock))

    def _start_reorder_market(self, fault: Fault, params: dict[str, Any]) -> None:
        self._add_filter(fault, ReorderMarket(fault, _int(params, "count", 2, minimum=2), self.clock))

    def _start_expire_listen_key(self, fault: Fault, params: dict[str, Any]) -> None:
        fault.hits = self._keys().expire_now(_api_key(params))
        fault.finish(fault.effective_ms)

    def _start_clock_jump(self, fault: Fault, params: dict[str, Any]) -> None:
        ms = _int(params, "ms")
        self.jump(ms)
        fault.detail["now_ms"] = self.clock.now_ms()
        fault.finish(fault.effective_ms)

    def _start_fail_requests(self, fault: Fault, params: dict[str, Any]) -> None:
        code = _int(params, "code", -1008)
        msg = params.get("msg", OVERLOADED_1008_MSG if code == -1008 else "Service Unavailable.")
        if not isinstance(msg, str):
            raise FaultSpecError("msg must be a string")
        fault.detail = {"status": _int(params, "status", 503, minimum=100), "code": code, "msg": msg}
        self.http["fail"].append(self._http_fault(fault, params, counted=True))

    def _start_unknown_outcome(self, fault: Fault, params: dict[str, Any]) -> None:
        mode = _choice(params, "mode", ("timeout", "503", "-1007"), "503")
        default_status = {"timeout": 200, "503": 503, "-1007": 408}[mode]
        fault.detail = {
            "mode": mode,
            "status": _int(params, "status", default_status, minimum=100),
            "hold_s": _num(params, "hold_s", self.default_hold_s),
        }
        self.http["unknown"].append(self._http_fault(fault, params, counted=True))

    def _start_rate_limit(self, fault: Fault, params: dict[str, Any]) -> None:
        seconds = _num(params, "seconds", 60)
        status = _int(params, "status", 429)
        if status not in (429, 418):
            raise FaultSpecError("status must be 429 or 418")
        hf = self._http_fault(fault, params, counted=False)
        hf.until_ms = fault.effective_ms + int(seconds * 1000)
        fault.detail = {"status": status, "until_ms": hf.until_ms}
        self.http["rate_limit"].append(hf)

    def _start_latency(self, fault: Fault, params: dict[str, Any]) -> None:
        fault.detail = {"delay_s": _num(params, "ms") / 1000.0}
        hf = self._http_fault(fault, params, counted=False)
        if "seconds" in params:
            hf.until_ms = fault.effective_ms + int(_num(params, "seconds") * 1000)
        self.http["latency"].append(hf)

    @staticmethod
    def _http_fault(fault: Fault, params: dict[str, Any], *, counted: bool) -> HttpFault:
        path = params.get("path")
        method = params.get("method")
        if path is not None and not isinstance(path, str):
            raise FaultSpecError("path must be a string")
        if method is not None and not isinstance(method, str):
            raise FaultSpecError("method must be a string")
        count = _int(params, "count", 1, minimum=1) if counted else None
        return HttpFault(fault, path, method.upper() if method else None, count)

    # -- the middleware's work -------------------------------------------------------------
    def _first(self, group: str, request: web.Request, now_ms: int) -> HttpFault | None:
        faults = self.http[group]
        faults[:] = [hf for hf in faults if hf.live(now_ms)]
        return next((hf for hf in faults if hf.matches(request)), None)

    async def handle_upgrade(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """WebSocket handshakes meet only a fail_requests fault that names their path (a refused
        reconnect); REST rate limits and latency do not apply to streams."""
        now = self.clock.now_ms()
        faults = self.http["fail"]
        faults[:] = [hf for hf in faults if hf.live(now)]
        failing = next((hf for hf in faults if hf.path is not None and hf.matches(request)), None)
        if failing is None:
            return await handler(request)
        failing.consume(now)
        d = failing.fault.detail
        return _binance_error(d["status"], d["code"], d["msg"])

    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        now = self.clock.now_ms()
        limited = self._first("rate_limit", request, now)
        if limited is not None:
            limited.consume(now)
            return self._rate_limited(limited, now)
        failing = self._first("fail", request, now)
        if failing is not None:
            failing.consume(now)
            d = failing.fault.detail
            return _binance_error(d["status"], d["code"], d["msg"])
        unknown = self._first("unknown", request, now)
        if unknown is None:
            response = await handler(request)
        else:
            unknown.consume(now)
            response = await self._unknown(unknown.fault, request, handler)
        slow = self._first("latency", request, self.clock.now_ms())
        if slow is not None:
            slow.consume(now)
            await self._hold(slow.fault.detail["delay_s"])
        return response

    def _rate_limited(self, hf: HttpFault, now_ms: int) -> web.Response:
        until = hf.fault.detail["until_ms"]
        # Retry-After is what a client sleeps: wall seconds, like the simulator's own rate limiter.
        retry_after = str(max(1, math.ceil(self.clock.wall_seconds(until - now_ms))))
        ip = "127.0.0.1"
        if hf.fault.detail["status"] == 418:
            msg = f"Way too many requests; IP({ip}) banned until {until}. Please use the websocket for live updates to avoid bans."
        else:
            msg = (
                f"Too many requests; current limit of IP({ip}) is 2400 requests per minute. "
                "Please use the websocket for live updates to avoid polling the API."
            )
        return _binance_error(hf.fault.detail["status"], -1003, msg, {"Retry-After": retry_after})

    async def _unknown(self, fault: Fault, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Execute the request; the caller must not learn how it went."""
        mode = fault.detail["mode"]
        if mode == "timeout":
            try:
                return await handler(request)
            finally:
                await self._hold(fault.detail["hold_s"])
        try:
            await handler(request)
        except (BinanceError, web.HTTPException) as exc:
            log.info("fault #%d hid the outcome of %s %s: %r", fault.id, request.method, request.path, exc)
        if mode == "503":
            return _binance_error(fault.detail["status"], -1000, UNKNOWN_503_MSG)
        return _binance_error(fault.detail["status"], -1007, TIMEOUT_1007_MSG)

    async def _hold(self, seconds: float) -> None:
        """Wall-time delay that ends early when the server shuts down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.shutting_down.wait(), timeout=seconds)

    # -- out-of-band trade -----------------------------------------------------------------
    def trade(self, spec: dict[str, Any]) -> dict[str, Any]:
        """A MARKET order placed outside the API client, e.g. from the Android app."""
        if self.new_order is None:
            raise FaultSpecError("this simulator has no exchange to trade on")
        api_key = spec.get("api_key")
        side = spec.get("side")
        symbol = spec.get("symbol")
        quantity = spec.get("quantity")
        events = spec.get("events", True)
        if not isinstance(api_key, str) or not isinstance(symbol, str) or side not in ("BUY", "SELL"):
            raise FaultSpecError("api_key, symbol and side (BUY|SELL) are required")
        if not isinstance(quantity, str | int | float) or isinstance(quantity, bool):
            raise FaultSpecError("quantity is required (a decimal string)")
        if not isinstance(events, bool):
            raise FaultSpecError("events must be true or false")
        params = {
            "symbol": symbol.upper(),
            "side": str(side),
            "type": "MARKET",
            "quantity": str(quantity),
            "newClientOrderId": "android_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(20)),
            "newOrderRespType": "RESULT",
        }
        for optional in ("positionSide", "reduceOnly"):
            if optional in spec:
                params[optional] = str(spec[optional]).lower() if optional == "reduceOnly" else str(spec[optional])
        order = self.new_order(api_key, params, emit_events=events)
        log.warning("out-of-band trade on %s…: %s %s %s (events=%s)", api_key[:6], side, quantity, symbol, events)
        return order


# -- HTTP wiring ---------------------------------------------------------------------------
FAULT_BOOK = web.AppKey("aegis_sim_fault_book", FaultBook)


def _is_ws_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/_sim/"):
        return await handler(request)
    book = request.app[FAULT_BOOK]
    if _is_ws_upgrade(request):
        return await book.handle_upgrade(request, handler)
    return await book.handle(request, handler)


async def _read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return body


async def post_fault(request: web.Request) -> web.Response:
    book = request.app[FAULT_BOOK]
    try:
        fault = book.inject(await _read_json(request))
    except FaultSpecError as err:
        return web.json_response({"error": str(err)}, status=400)
    return web.json_response({"id": fault.id, **fault.row()})


async def list_faults(request: web.Request) -> web.Response:
    book = request.app[FAULT_BOOK]
    book.refresh()
    return web.json_response([f.row() for f in book.faults])


async def delete_fault(request: web.Request) -> web.Response:
    try:
        fault_id = int(request.match_info["id"])
    except ValueError:
        return web.json_response({"error": "id must be an integer"}, status=400)
    fault = request.app[FAULT_BOOK].clear(fault_id)
    if fault is None:
        return web.json_response({"error": f"no fault {fault_id}"}, status=404)
    return web.json_response(fault.row())


async def post_trade(request: web.Request) -> web.Response:
    book = request.app[FAULT_BOOK]
    try:
        order = book.trade(await _read_json(request))
    except FaultSpecError as err:
        return web.json_response({"error": str(err)}, status=400)
    except BinanceError as err:
        return web.json_response(err.body(), status=err.http_status)
    return web.json_response(order)


def install(app: web.Application, sim: Any) -> None:
    """Add the fault middleware and the /_sim/faults and /_sim/trade admin routes to ``app``."""
    def jump(ms: int) -> None:
        sim.set_clock(jump_ms=ms)

    book = FaultBook(sim.clock, app, sim.exchange.new_order, jump)
    # SimConfig.extra["fault_hold_s"]: how long unknown_outcome mode=timeout holds by default
    book.default_hold_s = float(sim.config.extra.get("fault_hold_s", book.default_hold_s))
    mount(app, book)


def mount(app: web.Application, book: FaultBook) -> None:
    """Wiring only; split out so a test can mount the book on a bare app."""
    app[FAULT_BOOK] = book
    # Outermost: a fault answers before authentication or weights, as Binance's gateway does.
    app.middlewares.insert(0, fault_middleware)
    app.router.add_post("/_sim/faults", post_fault)
    app.router.add_get("/_sim/faults", list_faults)
    app.router.add_delete("/_sim/faults/{id}", delete_fault)
    app.router.add_post("/_sim/trade", post_trade)

    async def _shutdown(_: web.Application) -> None:
        book.shutting_down.set()

    app.on_shutdown.append(_shutdown)
