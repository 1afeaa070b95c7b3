"""The fault book: every fault injected so far, started by kind, listed and cleared over HTTP.

``POST /_sim/faults {"kind": ..., ...[, "at_ms": T]}`` checks a fault and starts it now, or at
exchange time T (status ``scheduled`` until then), and answers ``{"id": n, ...}``;
``GET /_sim/faults`` lists every fault with ``effective_ms`` (simulator ms), ``status``
(scheduled | active | done | cleared), ``ended_ms`` and ``hits``; ``DELETE /_sim/faults/{id}`` ends a
lasting one. ``aegis.sim.admin.SimAdmin`` wraps all of it.

Kinds and parameters (durations in ``seconds`` are simulator time; ``ms``/``hold_s`` delays
are event-loop time):
- ``drop_ws`` scope=market|user|all [api_key]: abort those connections, no close frame.
- ``freeze_ws`` scope=market|user|all [api_key]: those connections go half-open: still
  connected, but nothing more goes out (no data, no pings, no pongs).
- ``pause_user`` [api_key] [seconds=S | count=N] [events]: user-stream events are lost (the exchange
  state still changes, the sockets stay open) until S elapse, N events were lost, or DELETE;
  with ``events`` (a list of ``e`` values, e.g. ["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"]) only
  those are lost: a fill (TRADE_LITE) arrives for an order whose own events never do.
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

import asyncio
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
    "pause_user": frozenset({"api_key", "seconds", "count", "events"}),
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
Arm = Callable[[], None]  # what starts a checked fault, now or at its at_ms
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
        self.timers: dict[int, asyncio.Task[None]] = {}  # faults scheduled for a later exchange time
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
        """Validate a fault and start it now, or at ``at_ms`` (exchange time) when given."""
        kind = spec.get("kind")
        if kind not in KINDS:
            raise AdminInputError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        params = {k: v for k, v in spec.items() if k not in ("kind", "at_ms")}
        inp.only(params, KIND_PARAMS[kind], str(kind))
        now = self.clock.now_ms()
        at_ms = inp.at_ms(spec, now) if "at_ms" in spec else now
        fault = Fault(len(self.faults) + 1, str(kind), params, at_ms)
        arm = getattr(self, f"_plan_{kind}")(fault, params)  # validates every value first
        self.faults.append(fault)
        if at_ms > now:
            fault.status = "scheduled"
            self.timers[fault.id] = asyncio.get_running_loop().create_task(
                self._arm_at(fault, arm), name=f"sim-fault-{fault.id}"
            )
            log.warning("fault #%d %s scheduled for %d: %s", fault.id, kind, at_ms, params)
        else:
            arm()
            log.warning("fault #%d %s injected at %d: %s", fault.id, kind, fault.effective_ms, params)
        return fault

    async def _arm_at(self, fault: Fault, arm: Callable[[], None]) -> None:
        await self.clock.sleep_until(fault.effective_ms)
        self.timers.pop(fault.id, None)
        if fault.status == "scheduled":
            fault.status = "active"
            fault.effective_ms = self.clock.now_ms()  # later than asked if the clock jumped over it
            arm()
            log.warning("fault #%d %s took effect at %d", fault.id, fault.kind, fault.effective_ms)

    def stop(self) -> None:
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()

    def clear(self, fault_id: int) -> Fault | None:
        fault = next((f for f in self.faults if f.id == fault_id), None)
        if fault is None:
            return None
        timer = self.timers.pop(fault_id, None)
        if timer is not None:
            timer.cancel()
        if fault.status == "scheduled":  # never took effect
            fault.status = "active"
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

    # one _plan_<kind> per fault kind: read and check every parameter, return what arms it ---
    def _plan_drop_ws(self, fault: Fault, params: dict[str, Any]) -> Arm:
        scope = inp.choice(params, "scope", ("market", "user", "all"), "all")
        api_key = inp.optional_string(params, "api_key")

        def arm() -> None:
            dropped = 0
            if scope in ("market", "all"):
                dropped += self._hub().drop_all("fault drop_ws")
            if scope in ("user", "all"):
                dropped += self._keys().drop_all("fault drop_ws", api_key)
            fault.hits = dropped
            fault.finish(fault.effective_ms)

        return arm

    def _plan_freeze_ws(self, fault: Fault, params: dict[str, Any]) -> Arm:
        scope = inp.choice(params, "scope", ("market", "user", "all"), "all")
        api_key = inp.optional_string(params, "api_key")

        def arm() -> None:
            frozen = 0
            if scope in ("market", "all"):
                frozen += self._hub().freeze_all()
            if scope in ("user", "all"):
                frozen += self._keys().freeze_all(api_key)
            fault.hits = frozen
            fault.finish(fault.effective_ms)

        return arm

    def _plan_pause_user(self, fault: Fault, params: dict[str, Any]) -> Arm:
        span_ms = int(inp.seconds(params, "seconds") * 1000) if "seconds" in params else None
        count = inp.count(params, "count") if "count" in params else None
        api_key = inp.optional_string(params, "api_key")
        events = inp.event_types(params)

        def arm() -> None:
            until = fault.effective_ms + span_ms if span_ms is not None else None
            mute = PauseUser(fault, api_key, until, count, self.clock, events)
            self.mutes[fault.id] = mute
            self._keys().mutes.append(mute)

        return arm

    def _plan_pause_market(self, fault: Fault, params: dict[str, Any]) -> Arm:
        candles = inp.count(params, "candles", 1)
        symbols = inp.symbols(params)

        def arm() -> None:
            watched = symbols or set(self._hub().watched)
            self._add_filter(fault, PauseMarket(fault, candles, watched, self.clock))

        return arm

    def _plan_duplicate_market(self, fault: Fault, params: dict[str, Any]) -> Arm:
        count = inp.count(params, "count", 1)
        return lambda: self._add_filter(fault, DuplicateMarket(fault, count, self.clock))

    def _plan_reorder_market(self, fault: Fault, params: dict[str, Any]) -> Arm:
        count = inp.count(params, "count", 2, minimum=2)
        return lambda: self._add_filter(fault, ReorderMarket(fault, count, self.clock))

    def _plan_expire_listen_key(self, fault: Fault, params: dict[str, Any]) -> Arm:
        api_key = inp.optional_string(params, "api_key")

        def arm() -> None:
            fault.hits = self._keys().expire_now(api_key)
            fault.finish(fault.effective_ms)

        return arm

    def _plan_clock_jump(self, fault: Fault, params: dict[str, Any]) -> Arm:
        ms = inp.jump_ms(params, "ms", fault.effective_ms)

        def arm() -> None:
            self.jump(ms)
            fault.detail["now_ms"] = self.clock.now_ms()
            fault.finish(fault.effective_ms)

        return arm

    def _plan_fail_requests(self, fault: Fault, params: dict[str, Any]) -> Arm:
        code = inp.integer(params, "code", -1008, minimum=-99_999, maximum=-1)
        msg = inp.optional_string(params, "msg") or (OVERLOADED_1008_MSG if code == -1008 else "Service Unavailable.")
        fault.detail = {"status": inp.http_status(params, 503), "code": code, "msg": msg}
        hf = self._http_fault(fault, params, counted=True)
        return lambda: self.http.add("fail", hf)

    def _plan_unknown_outcome(self, fault: Fault, params: dict[str, Any]) -> Arm:
        mode = inp.choice(params, "mode", ("timeout", "503", "-1007"), "503")
        default_status = {"timeout": 200, "503": 503, "-1007": 408}[mode]
        fault.detail = {
            "mode": mode,
            "status": inp.http_status(params, default_status),
            "hold_s": inp.number(params, "hold_s", self.default_hold_s, inp.MAX_HOLD_S),
        }
        hf = self._http_fault(fault, params, counted=True)
        return lambda: self.http.add("unknown", hf)

    def _plan_rate_limit(self, fault: Fault, params: dict[str, Any]) -> Arm:
        span_ms = int(inp.seconds(params, "seconds", 60) * 1000)
        status = inp.http_status(params, 429)
        if status not in (429, 418):
            raise AdminInputError("status must be 429 or 418")
        hf = self._http_fault(fault, params, counted=False)

        def arm() -> None:
            hf.until_ms = fault.effective_ms + span_ms
            fault.detail = {"status": status, "until_ms": hf.until_ms}
            self.http.add("rate_limit", hf)

        return arm

    def _plan_latency(self, fault: Fault, params: dict[str, Any]) -> Arm:
        fault.detail = {"delay_s": inp.number(params, "ms", maximum=MAX_LATENCY_MS) / 1000.0}
        span_ms = int(inp.seconds(params, "seconds") * 1000) if "seconds" in params else None
        hf = self._http_fault(fault, params, counted=False)

        def arm() -> None:
            if span_ms is not None:
                hf.until_ms = fault.effective_ms + span_ms
            self.http.add("latency", hf)

        return arm

    def _plan_order_lag(self, fault: Fault, params: dict[str, Any]) -> Arm:
        lag = self.lag
        if lag is None:
            raise AdminInputError("this simulator has no exchange to delay orders on")
        rule = LagRule(
            span_ms=int(inp.seconds(params, "seconds") * 1000),
            count=inp.count(params, "count", 1),
            api_key=inp.optional_string(params, "api_key"),
            delay_events=inp.choice(params, "events", ("live", "delayed"), "live") == "delayed",
        )
        fault.detail = {"span_ms": rule.span_ms}

        def arm() -> None:
            self.lags[fault.id] = rule
            lag.rules.append(rule)

        return arm

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
        book.stop()

    app.on_shutdown.append(_shutdown)
