"""The fault book: every fault injected so far, started by kind, listed and cleared over HTTP.

``POST /_sim/faults {"kind": ..., ...}`` starts a fault and answers ``{"id": n, ...}``;
``GET /_sim/faults`` lists every fault with ``effective_ms`` (simulator ms), ``status``
(active | done | cleared), ``ended_ms`` and ``hits``; ``DELETE /_sim/faults/{id}`` ends a
lasting one. ``aegis.sim.admin.SimAdmin`` wraps all of it.

Kinds and parameters (durations in ``seconds`` are simulator time; ``ms``/``hold_s`` delays
are event-loop time):
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
- ``order_lag`` seconds=S [count=N] [api_key] [events=live|delayed]: the next N orders accepted
  on POST /fapi/v1/order stay invisible to GET order/openOrders/allOrders/userTrades for S
  (Binance's query lag, lag.py); combine with ``unknown_outcome`` for an order that was accepted,
  answered with an error, and cannot be found for a while.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from aegis.sim import admininput as inp
from aegis.sim.admininput import AdminInputError
from aegis.sim.clock import SimClock
from aegis.sim.faults.http import OVERLOADED_1008_MSG, Handler, HttpFault, HttpFaults
from aegis.sim.faults.record import Fault
from aegis.sim.faults.streams import DuplicateMarket, PauseMarket, PauseUser, ReorderMarket
from aegis.sim.lag import LagRule, OrderLag
from aegis.sim.listenkeys import LISTEN_KEYS, ListenKeys
from aegis.sim.streams import MARKET_HUB, KlineFilter, MarketHub

log = logging.getLogger("aegis.sim.faults")

_ROUTE = frozenset({"path", "method"})
# Every kind and the parameters it takes: anything else is a 400, so a typo ("secs") cannot
# silently mean the default.
KIND_PARAMS: dict[str, frozenset[str]] = {
    "drop_ws": frozenset({"scope", "api_key"}),
    "freeze_ws": frozenset({"scope", "api_key"}),
    "pause_user": frozenset({"api_key", "seconds", "count"}),
    "pause_market": frozenset({"candles", "symbols"}),
    "duplicate_market": frozenset({"count"}),
    "reorder_market": frozenset({"count"}),
    "expire_listen_key": frozenset({"api_key"}),
    "fail_requests": _ROUTE | {"count", "status", "code", "msg"},
    "unknown_outcome": _ROUTE | {"count", "mode", "hold_s", "status"},
    "rate_limit": _ROUTE | {"seconds", "status"},
    "latency": _ROUTE | {"ms", "seconds"},
    "clock_jump": frozenset({"ms"}),
    "order_lag": frozenset({"seconds", "count", "api_key", "events"}),
}
KINDS = tuple(KIND_PARAMS)
MAX_LATENCY_MS = 600_000.0


class FaultBook:
    """Every fault injected so far, and the machinery that applies the live ones."""

    def __init__(
        self,
        clock: SimClock,
        app: web.Application,
        jump: Callable[[int], None] | None = None,
        lag: OrderLag | None = None,
    ) -> None:
        self.clock = clock
        self.lag = lag
        self.lags: dict[int, LagRule] = {}
        self.app = app
        # The exchange's own jump walks the market through the skipped time (closes, fills).
        self.jump = jump or clock.jump
        self.faults: list[Fault] = []
        self.http = HttpFaults(clock)
        self.filters: dict[int, KlineFilter] = {}
        self.mutes: dict[int, PauseUser] = {}
        self.default_hold_s = 60.0

    # -- injection -------------------------------------------------------------------------
    def inject(self, spec: dict[str, Any]) -> Fault:
        kind = spec.get("kind")
        if kind not in KINDS:
            raise AdminInputError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        params = {k: v for k, v in spec.items() if k != "kind"}
        inp.only(params, KIND_PARAMS[kind], str(kind))
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
        rule = self.lags.pop(fault_id, None)
        if rule is not None:
            rule.done = True
        fault.finish(self.clock.now_ms(), "cleared")
        return fault

    def refresh(self) -> None:
        """Mark timed faults whose time is up as done, so the listing is current."""
        now = self.clock.now_ms()
        self.http.refresh()
        for fault_id, rule in list(self.lags.items()):
            fault = next(f for f in self.faults if f.id == fault_id)
            fault.hits = rule.hits
            if rule.done:
                fault.finish(now)
                del self.lags[fault_id]
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
        scope = inp.choice(params, "scope", ("market", "user", "all"), "all")
        api_key = inp.optional_string(params, "api_key")
        dropped = 0
        if scope in ("market", "all"):
            dropped += self._hub().drop_all("fault drop_ws")
        if scope in ("user", "all"):
            dropped += self._keys().drop_all("fault drop_ws", api_key)
        fault.hits = dropped
        fault.finish(fault.effective_ms)

    def _start_freeze_ws(self, fault: Fault, params: dict[str, Any]) -> None:
        scope = inp.choice(params, "scope", ("market", "user", "all"), "all")
        api_key = inp.optional_string(params, "api_key")
        frozen = 0
        if scope in ("market", "all"):
            frozen += self._hub().freeze_all()
        if scope in ("user", "all"):
            frozen += self._keys().freeze_all(api_key)
        fault.hits = frozen
        fault.finish(fault.effective_ms)

    def _start_pause_user(self, fault: Fault, params: dict[str, Any]) -> None:
        until = fault.effective_ms + int(inp.seconds(params, "seconds") * 1000) if "seconds" in params else None
        count = inp.count(params, "count") if "count" in params else None
        mute = PauseUser(fault, inp.optional_string(params, "api_key"), until, count, self.clock)
        self.mutes[fault.id] = mute
        self._keys().mutes.append(mute)

    def _start_pause_market(self, fault: Fault, params: dict[str, Any]) -> None:
        candles = inp.count(params, "candles", 1)
        symbols = inp.symbols(params) or set(self._hub().watched)
        self._add_filter(fault, PauseMarket(fault, candles, symbols, self.clock))

    def _start_duplicate_market(self, fault: Fault, params: dict[str, Any]) -> None:
        self._add_filter(fault, DuplicateMarket(fault, inp.count(params, "count", 1), self.clock))

    def _start_reorder_market(self, fault: Fault, params: dict[str, Any]) -> None:
        self._add_filter(fault, ReorderMarket(fault, inp.count(params, "count", 2, minimum=2), self.clock))

    def _start_expire_listen_key(self, fault: Fault, params: dict[str, Any]) -> None:
        fault.hits = self._keys().expire_now(inp.optional_string(params, "api_key"))
        fault.finish(fault.effective_ms)

    def _start_clock_jump(self, fault: Fault, params: dict[str, Any]) -> None:
        self.jump(inp.jump_ms(params, "ms", self.clock.now_ms()))
        fault.detail["now_ms"] = self.clock.now_ms()
        fault.finish(fault.effective_ms)

    def _start_fail_requests(self, fault: Fault, params: dict[str, Any]) -> None:
        code = inp.integer(params, "code", -1008, minimum=-99_999, maximum=-1)
        msg = inp.optional_string(params, "msg") or (OVERLOADED_1008_MSG if code == -1008 else "Service Unavailable.")
        fault.detail = {"status": inp.http_status(params, 503), "code": code, "msg": msg}
        self.http.add("fail", self._http_fault(fault, params, counted=True))

    def _start_unknown_outcome(self, fault: Fault, params: dict[str, Any]) -> None:
        mode = inp.choice(params, "mode", ("timeout", "503", "-1007"), "503")
        default_status = {"timeout": 200, "503": 503, "-1007": 408}[mode]
        fault.detail = {
            "mode": mode,
            "status": inp.http_status(params, default_status),
            "hold_s": inp.number(params, "hold_s", self.default_hold_s, inp.MAX_HOLD_S),
        }
        self.http.add("unknown", self._http_fault(fault, params, counted=True))

    def _start_rate_limit(self, fault: Fault, params: dict[str, Any]) -> None:
        seconds = inp.seconds(params, "seconds", 60)
        status = inp.http_status(params, 429)
        if status not in (429, 418):
            raise AdminInputError("status must be 429 or 418")
        hf = self._http_fault(fault, params, counted=False)
        hf.until_ms = fault.effective_ms + int(seconds * 1000)
        fault.detail = {"status": status, "until_ms": hf.until_ms}
        self.http.add("rate_limit", hf)

    def _start_latency(self, fault: Fault, params: dict[str, Any]) -> None:
        fault.detail = {"delay_s": inp.number(params, "ms", maximum=MAX_LATENCY_MS) / 1000.0}
        hf = self._http_fault(fault, params, counted=False)
        if "seconds" in params:
            hf.until_ms = fault.effective_ms + int(inp.seconds(params, "seconds") * 1000)
        self.http.add("latency", hf)

    def _start_order_lag(self, fault: Fault, params: dict[str, Any]) -> None:
        if self.lag is None:
            raise AdminInputError("this simulator has no exchange to delay orders on")
        rule = LagRule(
            span_ms=int(inp.seconds(params, "seconds") * 1000),
            count=inp.count(params, "count", 1),
            api_key=inp.optional_string(params, "api_key"),
            delay_events=inp.choice(params, "events", ("live", "delayed"), "live") == "delayed",
        )
        fault.detail = {"span_ms": rule.span_ms}
        self.lags[fault.id] = rule
        self.lag.rules.append(rule)

    @staticmethod
    def _http_fault(fault: Fault, params: dict[str, Any], *, counted: bool) -> HttpFault:
        count = inp.count(params, "count", 1) if counted else None
        return HttpFault(fault, inp.path(params), inp.method(params), count)


# -- HTTP wiring ---------------------------------------------------------------------------
FAULT_BOOK = web.AppKey("aegis_sim_fault_book", FaultBook)


def _is_ws_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/_sim/"):
        return await handler(request)
    http = request.app[FAULT_BOOK].http
    if _is_ws_upgrade(request):
        return await http.handle_upgrade(request, handler)
    return await http.handle(request, handler)


async def post_fault(request: web.Request) -> web.Response:
    book = request.app[FAULT_BOOK]
    try:
        fault = book.inject(await inp.read_json(request))
    except AdminInputError as err:
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


def install(app: web.Application, sim: Any) -> None:
    """Add the fault middleware and the /_sim/faults admin routes to ``app``."""

    def jump(ms: int) -> None:
        sim.set_clock(jump_ms=ms)

    book = FaultBook(sim.clock, app, jump, sim.exchange.lag)
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

    async def _shutdown(_: web.Application) -> None:
        book.http.shutting_down.set()

    app.on_shutdown.append(_shutdown)
