"""The REST surface: Binance's paths, parameters, weights, headers and error bodies.

Every route declares its security type and weight; one wrapper does parameter parsing
(query wins over form body), rate limits, API key, timestamp and signature, then calls a
small synchronous handler on the exchange and renders JSON or Binance's error body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from aegis.sim import auth, errors, params, views
from aegis.sim.accounts import Account
from aegis.sim.audit import AUDIT_ROW
from aegis.sim.errors import BinanceError
from aegis.sim.market import INTERVALS
from aegis.sim.params import Params, check_numbers
from aegis.sim.params import from_request as parse_params

if TYPE_CHECKING:
    from aegis.sim.simulator import Simulator

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Req:
    params: Params
    api_key: str
    account: Account | None
    now: int


Handler = Callable[["Simulator", Req], Any]
Weight = int | Callable[[Params], int]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    security: str  # NONE | SIGNED
    weight: Weight
    orders: bool = False
    audited: bool = False  # an order request: recorded in the exchange's audit with its answer


def _with_symbol(light: int, heavy: int) -> Callable[[Params], int]:
    return lambda p: light if p.get("symbol") else heavy


def _klines_weight(p: Params) -> int:
    limit = params.limit(p)
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


# ----- handlers (synchronous: the exchange never awaits) -----
def ping(sim: Simulator, r: Req) -> Any:
    return {}


def server_time(sim: Simulator, r: Req) -> Any:
    return {"serverTime": r.now}


def exchange_info(sim: Simulator, r: Req) -> Any:
    return sim.info.body(r.now)


def klines(sim: Simulator, r: Req) -> Any:
    spec = sim.exchange.spec(r.params.get("symbol"))
    interval = r.params.get("interval")
    if not interval:
        raise errors.mandatory("interval")
    if interval not in INTERVALS:
        raise errors.bad(-1120, "Invalid interval.")
    return sim.market.klines(
        spec.symbol,
        interval,
        params.integer(r.params, "startTime"),
        params.integer(r.params, "endTime"),
        params.limit(r.params),
        r.now,
    )


def premium_index(sim: Simulator, r: Req) -> Any:
    sym = r.params.get("symbol")
    if sym:
        return views.premium_index(sim.exchange, sim.exchange.spec(sym), r.now)
    return [
        views.premium_index(sim.exchange, s, r.now)
        for s in sim.info.symbols.values()
        if s.status == "TRADING"
    ]


def ticker_price(sim: Simulator, r: Req) -> Any:
    sym = r.params.get("symbol")
    if sym:
        return views.ticker_price(sim.exchange, sim.exchange.spec(sym), r.now)
    return [
        views.ticker_price(sim.exchange, s, r.now) for s in sim.info.symbols.values() if s.status == "TRADING"
    ]


def book_ticker(sim: Simulator, r: Req) -> Any:
    sym = r.params.get("symbol")
    if sym:
        return views.book_ticker(sim.exchange, sim.exchange.spec(sym), r.now)
    return [
        views.book_ticker(sim.exchange, s, r.now) for s in sim.info.symbols.values() if s.status == "TRADING"
    ]


def _depth_weight(p: Params) -> int:
    limit = params.depth_limit(p)
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def depth(sim: Simulator, r: Req) -> Any:
    return views.depth(sim.exchange, sim.exchange.spec(r.params.get("symbol")), params.depth_limit(r.params), r.now)


def new_order(sim: Simulator, r: Req) -> Any:
    return sim.exchange.new_order(r.api_key, r.params)


def get_order(sim: Simulator, r: Req) -> Any:
    return sim.exchange.query_order(r.api_key, r.params)


def cancel_order(sim: Simulator, r: Req) -> Any:
    return sim.exchange.cancel_order(r.api_key, r.params)


def open_orders(sim: Simulator, r: Req) -> Any:
    return sim.exchange.open_orders(r.api_key, r.params.get("symbol"))


def cancel_all(sim: Simulator, r: Req) -> Any:
    return sim.exchange.cancel_all(r.api_key, r.params.get("symbol"))


def countdown(sim: Simulator, r: Req) -> Any:
    return sim.exchange.countdown_cancel_all(r.api_key, r.params)


def all_orders(sim: Simulator, r: Req) -> Any:
    return sim.exchange.all_orders(r.api_key, r.params)


def user_trades(sim: Simulator, r: Req) -> Any:
    return sim.exchange.user_trades(r.api_key, r.params)


def income(sim: Simulator, r: Req) -> Any:
    return sim.exchange.income_history(r.api_key, r.params)


def account_v2(sim: Simulator, r: Req) -> Any:
    assert r.account is not None
    return views.account_v2(sim.exchange, r.account)


def account_v3(sim: Simulator, r: Req) -> Any:
    assert r.account is not None
    return views.account_v3(sim.exchange, r.account)


def _risk(v3: bool) -> Handler:
    def handler(sim: Simulator, r: Req) -> Any:
        assert r.account is not None
        sym = r.params.get("symbol")
        symbol = sim.exchange.spec(sym).symbol if sym else None
        return views.position_risk(sim.exchange, r.account, symbol, v3=v3)

    return handler


def balance(sim: Simulator, r: Req) -> Any:
    assert r.account is not None
    return views.balances(sim.exchange, r.account)


def leverage(sim: Simulator, r: Req) -> Any:
    return sim.exchange.set_leverage(r.api_key, r.params)


def leverage_bracket(sim: Simulator, r: Req) -> Any:
    return views.leverage_brackets(sim.exchange, r.params.get("symbol"))


def position_mode(sim: Simulator, r: Req) -> Any:
    return {"dualSidePosition": False}


def new_algo(sim: Simulator, r: Req) -> Any:
    return sim.exchange.new_algo_order(r.api_key, r.params)


def get_algo(sim: Simulator, r: Req) -> Any:
    return sim.exchange.query_algo_order(r.api_key, r.params)


def cancel_algo(sim: Simulator, r: Req) -> Any:
    return sim.exchange.cancel_algo_order(r.api_key, r.params)


def open_algo(sim: Simulator, r: Req) -> Any:
    return sim.exchange.open_algo_orders(r.api_key, r.params.get("symbol"))


def cancel_all_algo(sim: Simulator, r: Req) -> Any:
    return sim.exchange.cancel_all_algo(r.api_key, r.params.get("symbol"))


N, S = "NONE", "SIGNED"
ROUTES: tuple[Route, ...] = (
    Route("GET", "/fapi/v1/ping", ping, N, 1),
    Route("GET", "/fapi/v1/time", server_time, N, 1),
    Route("GET", "/api/v3/ping", ping, N, 1),
    Route("GET", "/api/v3/time", server_time, N, 1),
    Route("GET", "/fapi/v1/exchangeInfo", exchange_info, N, 1),
    Route("GET", "/fapi/v1/klines", klines, N, _klines_weight),
    Route("GET", "/fapi/v1/premiumIndex", premium_index, N, _with_symbol(1, 10)),
    Route("GET", "/fapi/v1/ticker/price", ticker_price, N, _with_symbol(1, 2)),
    Route("GET", "/fapi/v2/ticker/price", ticker_price, N, _with_symbol(1, 2)),
    Route("GET", "/fapi/v1/ticker/bookTicker", book_ticker, N, _with_symbol(2, 5)),
    Route("GET", "/fapi/v1/depth", depth, N, _depth_weight),
    Route("POST", "/fapi/v1/order", new_order, S, 0, orders=True, audited=True),
    Route("GET", "/fapi/v1/order", get_order, S, 1),
    Route("DELETE", "/fapi/v1/order", cancel_order, S, 1, audited=True),
    Route("GET", "/fapi/v1/openOrders", open_orders, S, _with_symbol(1, 40)),
    Route("DELETE", "/fapi/v1/allOpenOrders", cancel_all, S, 1, audited=True),
    Route("POST", "/fapi/v1/countdownCancelAll", countdown, S, 10, audited=True),
    Route("GET", "/fapi/v1/allOrders", all_orders, S, 5),
    Route("GET", "/fapi/v1/userTrades", user_trades, S, 5),
    Route("GET", "/fapi/v1/income", income, S, 30),
    Route("GET", "/fapi/v2/account", account_v2, S, 5),
    Route("GET", "/fapi/v3/account", account_v3, S, 5),
    Route("GET", "/fapi/v2/positionRisk", _risk(False), S, 5),
    Route("GET", "/fapi/v3/positionRisk", _risk(True), S, 5),
    Route("GET", "/fapi/v2/balance", balance, S, 5),
    Route("GET", "/fapi/v3/balance", balance, S, 5),
    Route("POST", "/fapi/v1/leverage", leverage, S, 1),
    Route("GET", "/fapi/v1/leverageBracket", leverage_bracket, S, 1),
    Route("GET", "/fapi/v1/positionSide/dual", position_mode, S, 30),
    Route("POST", "/fapi/v1/algoOrder", new_algo, S, 0, orders=True, audited=True),
    Route("GET", "/fapi/v1/algoOrder", get_algo, S, 1),
    Route("DELETE", "/fapi/v1/algoOrder", cancel_algo, S, 1, audited=True),
    Route("GET", "/fapi/v1/openAlgoOrders", open_algo, S, _with_symbol(1, 40)),
    Route("DELETE", "/fapi/v1/algoOpenOrders", cancel_all_algo, S, 1, audited=True),
)

_JSON = "application/json"


def _response(status: int, body: Any, headers: dict[str, str]) -> web.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return web.Response(body=data, status=status, headers=headers, content_type=_JSON)


def endpoint(sim: Simulator, route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler for ``route``: parse, limit, authenticate, run, render."""
    limiter = sim.rate_limiter

    async def handle(request: web.Request) -> web.Response:
        ip = request.remote or "unknown"
        query = request.raw_path.partition("?")[2]
        body = ""
        if request.method != "GET" and request.body_exists:
            body = (await request.read()).decode("utf-8", "replace")
            if request.content_type not in (
                "application/x-www-form-urlencoded",
                "application/octet-stream",
                "",
            ):
                body = "" if body.lstrip().startswith(("{", "[")) else body
        headers: dict[str, str] = {}
        status = 200
        params: Params = {}
        api_key = request.headers.get("X-MBX-APIKEY", "")
        try:
            params = parse_params(query, body)
            weight = route.weight(params) if callable(route.weight) else route.weight
            limiter.take_weight(ip, weight)
            check_numbers(params)
            account = None
            if route.security == S:
                if not api_key:
                    raise errors.api_key_format()
                account = sim.exchange.account(api_key)
                auth.check_timestamp(params, sim.clock.now_ms(), sim.config.timestamp_reference)
                auth.verify_signature(account.secret_bytes, query, body)
            if route.orders:
                headers.update(limiter.take_order(api_key))
            result = route.handler(sim, Req(params, api_key, account, sim.clock.now_ms()))
        except BinanceError as exc:
            status, result = exc.http_status, exc.body()
            headers.update(exc.headers)
        except Exception:  # a simulator bug must look like Binance's own 500, not kill the connection
            log.exception("simulator failed on %s %s", request.method, request.path)
            status, result = (
                500,
                {"code": -1000, "msg": "An unknown error occurred while processing the request."},
            )
        headers["X-MBX-USED-WEIGHT-1M"] = str(limiter.used_weight(ip))
        if route.audited:
            request[AUDIT_ROW] = sim.audit.record(api_key, route.method, route.path, params, status, result)
        return _response(status, result, headers)

    return handle


def install(app: web.Application, sim: Simulator) -> None:
    """Register every REST route of the exchange."""
    for route in ROUTES:
        app.router.add_route(route.method, route.path, endpoint(sim, route))
