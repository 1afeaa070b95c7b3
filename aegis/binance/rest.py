"""BinanceRest: the typed REST facade the engine uses (domain types in, domain types out).

Composition: the engine passes plain values (base URL of the profile, keys, its Clock,
optionally a shared RateGovernor); this class builds the ServerClock and the transport.
Every method goes through the governor with the endpoint's cost and priority, signs with
the server clock, and returns Decimal domain objects or raises one of ``errors``.
"""

from __future__ import annotations

from decimal import Decimal
from types import TracebackType
from typing import Any

from aegis.binance import endpoints as ep
from aegis.binance import parse
from aegis.binance.clock import ServerClock
from aegis.binance.constants import KLINES_MAX_LIMIT
from aegis.binance.ratelimit import Priority, RateGovernor
from aegis.binance.transport import RestTransport
from aegis.clock import Clock
from aegis.domain import AlgoOrder, Balance, Candle, Fill, Income, Order, OrderRequest, OrderType, Position

__all__ = ["CONDITIONAL_TYPES", "BinanceRest", "wire_decimal"]

CONDITIONAL_TYPES = frozenset(
    {
        OrderType.STOP,
        OrderType.STOP_MARKET,
        OrderType.TAKE_PROFIT,
        OrderType.TAKE_PROFIT_MARKET,
        OrderType.TRAILING_STOP_MARKET,
    }
)


def wire_decimal(value: Decimal) -> str:
    """Binance wants plain digits: ``format(d, 'f')`` never writes an exponent."""
    if not value.is_finite():
        raise ValueError(f"cannot send {value!r}")
    return format(value, "f")


def _id_params(client_order_id: str | None, order_id: int | None) -> dict[str, Any]:
    if order_id is not None:
        return {"orderId": order_id}
    if client_order_id:
        return {"origClientOrderId": client_order_id}
    raise ValueError("client_order_id or order_id is required")


class BinanceRest:
    """Typed async access to the USD-M futures REST API of one profile (sim, testnet, live)."""

    def __init__(
        self,
        rest_url: str,
        api_key: str,
        secret: str,
        clock: Clock,
        governor: RateGovernor | None = None,
        *,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        recv_window_ms: int = 5000,
        time_sync_interval_s: float = 300.0,
        rate_share: float = 0.8,
    ) -> None:
        self.server_clock = ServerClock(clock, refresh_interval_s=time_sync_interval_s)
        # Built here by default so its windows run on server time, aligned with Binance's minutes.
        self.governor = governor or RateGovernor(self.server_clock, share=rate_share)
        self.transport = RestTransport(
            rest_url,
            api_key,
            secret,
            self.server_clock,
            self.governor,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            recv_window_ms=recv_window_ms,
        )
        self.server_clock.bind(self.server_time)

    async def __aenter__(self) -> BinanceRest:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def start_clock_sync(self) -> None:
        """Refresh the server-time offset in the background (every ``time_sync_interval_s``)."""
        self.server_clock.start()

    async def close(self) -> None:
        await self.server_clock.stop()
        await self.transport.close()

    @property
    def offset_ms(self) -> int:
        """Server minus local engine time, for /health and metrics."""
        return self.server_clock.offset_ms

    def status(self) -> dict[str, Any]:
        """What /state shows of the adapter: clock offset and rate-limit state."""
        gov = self.governor
        orders_10s, orders_1m = gov.order_counts
        return {
            "server_offset_ms": self.server_clock.offset_ms,
            "server_round_trip_ms": self.server_clock.round_trip_ms,
            "clock_syncs": self.server_clock.sync_count,
            "clock_resends": self.transport.clock_retries,
            "used_weight_1m": gov.used_weight,
            "weight_limit_1m": gov.limits.weight_per_minute,
            "orders_10s": orders_10s,
            "orders_1m": orders_1m,
            "rest_paused_until_ms": gov.paused_until_ms,
            "rest_pauses": gov.pauses,
            "rest_queued": gov.queued,
        }

    def problems(self) -> list[str]:
        """/health: REST paused by a 429 or banned by a 418 (with its end time)."""
        return self.governor.problems()

    # --- market data --------------------------------------------------------------------

    async def server_time(self) -> int:
        return parse.parse_server_time(await self.transport.call(ep.TIME))

    async def exchange_info(self, *, adopt_rate_limits: bool = True) -> parse.ExchangeInfo:
        """Symbol filters and the published rate limits (given to the governor by default)."""
        info = parse.parse_exchange_info(await self.transport.call(ep.EXCHANGE_INFO))
        if adopt_rate_limits:
            self.governor.configure(info.rate_limits)
        return info

    async def klines(
        self,
        symbol: str,
        interval: str = "1m",
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
        priority: Priority = Priority.BACKFILL,
    ) -> list[Candle]:
        """Oldest first; the last row may be the still-forming bar (close time in the future)."""
        if not 1 <= limit <= KLINES_MAX_LIMIT:
            raise ValueError(f"klines limit must be 1..{KLINES_MAX_LIMIT}, got {limit}")
        params: dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": limit}
        if start_ms is not None:
            params["startTime"] = start_ms
        if end_ms is not None:
            params["endTime"] = end_ms
        return parse.parse_klines(await self.transport.call(ep.KLINES, params, priority=priority), symbol)

    # --- orders -------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> Order:
        """POST /fapi/v1/order with our client order id (RESULT response, so fills show at once).

        Conditional types are refused locally: since Dec 2025 Binance answers -4120 for them
        here; use ``place_algo_order``.
        """
        if request.type in CONDITIONAL_TYPES:
            raise ValueError(f"{request.type} goes to place_algo_order (POST /fapi/v1/algoOrder)")
        params: dict[str, Any] = {
            "symbol": request.symbol,
            "side": request.side.value,
            "type": request.type.value,
            "newClientOrderId": request.client_order_id,
            "newOrderRespType": "RESULT",
        }
        if request.quantity is not None:
            params["quantity"] = wire_decimal(request.quantity)
        if request.price is not None:
            params["price"] = wire_decimal(request.price)
        if request.time_in_force is not None:
            params["timeInForce"] = request.time_in_force.value
        if request.reduce_only:
            params["reduceOnly"] = "true"
        return parse.parse_order(await self.transport.call(ep.ORDER_NEW, params))

    async def cancel_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: int | None = None
    ) -> Order:
        """DELETE /fapi/v1/order; OrderNotFound (-2011) if it is already closed or unknown."""
        params = {"symbol": symbol, **_id_params(client_order_id, order_id)}
        return parse.parse_order(await self.transport.call(ep.ORDER_CANCEL, params))

    async def get_order(
        self,
        symbol: str,
        *,
        client_order_id: str | None = None,
        order_id: int | None = None,
        priority: Priority | None = None,
    ) -> Order:
        """GET /fapi/v1/order: how an unknown outcome is resolved. OrderNotFound (-2013) if absent."""
        params = {"symbol": symbol, **_id_params(client_order_id, order_id)}
        return parse.parse_order(await self.transport.call(ep.ORDER_GET, params, priority=priority))

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        """GET /fapi/v1/openOrders (weight 1 with a symbol, 40 without)."""
        params = {"symbol": symbol} if symbol else {}
        return parse.parse_orders(await self.transport.call(ep.OPEN_ORDERS, params))

    async def place_algo_order(self, request: OrderRequest, *, working_type: str | None = None) -> AlgoOrder:
        """POST /fapi/v1/algoOrder (algoType CONDITIONAL); ``client_order_id`` becomes clientAlgoId."""
        if request.type not in CONDITIONAL_TYPES:
            raise ValueError(f"{request.type} is not a conditional order type")
        if request.trigger_price is None and request.type is not OrderType.TRAILING_STOP_MARKET:
            raise ValueError("conditional orders need trigger_price")
        params: dict[str, Any] = {
            "algoType": "CONDITIONAL",
            "symbol": request.symbol,
            "side": request.side.value,
            "type": request.type.value,
            "clientAlgoId": request.client_order_id,
        }
        if request.trigger_price is not None:
            params["triggerPrice"] = wire_decimal(request.trigger_price)
        if request.quantity is not None:
            params["quantity"] = wire_decimal(request.quantity)
        if request.price is not None:
            params["price"] = wire_decimal(request.price)
        if request.time_in_force is not None:
            params["timeInForce"] = request.time_in_force.value
        if request.close_position:
            params["closePosition"] = "true"
        elif request.reduce_only:
            params["reduceOnly"] = "true"
        if working_type:
            params["workingType"] = working_type
        return parse.parse_algo_order(await self.transport.call(ep.ALGO_NEW, params))

    async def cancel_algo_order(
        self, *, client_algo_id: str | None = None, algo_id: int | None = None
    ) -> int:
        """DELETE /fapi/v1/algoOrder; returns the algo id (Binance answers only ids)."""
        return parse.parse_algo_cancel(
            await self.transport.call(ep.ALGO_CANCEL, _algo_params(client_algo_id, algo_id))
        )

    async def get_algo_order(
        self, *, client_algo_id: str | None = None, algo_id: int | None = None
    ) -> AlgoOrder:
        return parse.parse_algo_order(
            await self.transport.call(ep.ALGO_GET, _algo_params(client_algo_id, algo_id))
        )

    async def open_algo_orders(self, symbol: str | None = None) -> list[AlgoOrder]:
        """GET /fapi/v1/openAlgoOrders: untriggered conditional orders (reconciliation needs them)."""
        params = {"symbol": symbol} if symbol else {}
        return parse.parse_algo_orders(await self.transport.call(ep.OPEN_ALGO_ORDERS, params))

    async def cancel_all_orders(self, symbol: str) -> None:
        """DELETE /fapi/v1/allOpenOrders: every normal open order of ``symbol`` (the kill switch)."""
        await self.transport.call(ep.CANCEL_ALL, {"symbol": symbol})

    async def countdown_cancel_all(self, symbol: str, countdown_ms: int) -> None:
        """POST /fapi/v1/countdownCancelAll: the exchange cancels ``symbol``'s open orders if no new
        heartbeat comes within ``countdown_ms`` (0 switches it off). The dead man's switch."""
        await self.transport.call(ep.COUNTDOWN_CANCEL_ALL, {"symbol": symbol, "countdownTime": countdown_ms})

    async def cancel_all_algo_orders(self, symbol: str) -> None:
        """DELETE /fapi/v1/algoOpenOrders: every untriggered conditional order of ``symbol``."""
        await self.transport.call(ep.CANCEL_ALL_ALGO, {"symbol": symbol})

    # --- account ------------------------------------------------------------------------

    async def hedge_mode(self) -> bool:
        """GET /fapi/v1/positionSide/dual (weight 30). The engine trades one-way: check at start-up,
        because reduceOnly orders are refused (-1106) in hedge mode."""
        return parse.parse_position_mode(await self.transport.call(ep.POSITION_MODE))

    async def balances(self) -> list[Balance]:
        """Per-asset balances from GET /fapi/v3/account."""
        return parse.parse_account_balances(await self.transport.call(ep.ACCOUNT))

    async def positions(self, symbol: str | None = None) -> list[Position]:
        """GET /fapi/v3/positionRisk: symbols with a position (amount may be 0 for open-order-only)."""
        params = {"symbol": symbol} if symbol else {}
        return parse.parse_position_risk(await self.transport.call(ep.POSITION_RISK, params))

    async def user_trades(
        self,
        symbol: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        from_id: int | None = None,
        order_id: int | None = None,
        limit: int = 500,
    ) -> list[Fill]:
        """GET /fapi/v1/userTrades (fills carry no client order id: match them by ``order_id``)."""
        params: dict[str, Any] = {"symbol": symbol, "limit": limit}
        for key, value in (
            ("startTime", start_ms),
            ("endTime", end_ms),
            ("fromId", from_id),
            ("orderId", order_id),
        ):
            if value is not None:
                params[key] = value
        return parse.parse_user_trades(await self.transport.call(ep.USER_TRADES, params))

    async def income(
        self,
        *,
        symbol: str | None = None,
        income_type: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
        page: int | None = None,
    ) -> list[Income]:
        """GET /fapi/v1/income (weight 30): realized PnL, commissions, funding... oldest first;
        ``page`` (from 1) pages through a window with more than ``limit`` rows."""
        params: dict[str, Any] = {"limit": limit}
        pairs = (("symbol", symbol), ("incomeType", income_type), ("startTime", start_ms), ("endTime", end_ms), ("page", page))
        for key, value in pairs:
            if value is not None:
                params[key] = value
        return parse.parse_income(await self.transport.call(ep.INCOME, params))

    async def set_leverage(self, symbol: str, leverage: int) -> int:
        body = await self.transport.call(ep.LEVERAGE, {"symbol": symbol, "leverage": leverage})
        return parse.parse_leverage(body)

    # --- user data stream ---------------------------------------------------------------

    async def create_listen_key(self) -> str:
        """POST /fapi/v1/listenKey: the active key if there is one (extended), else a new one."""
        return parse.parse_listen_key(await self.transport.call(ep.LISTEN_KEY_NEW))

    async def keepalive_listen_key(self) -> None:
        """PUT /fapi/v1/listenKey: +60 min. ListenKeyNotFound (-1125) means: create a new one."""
        await self.transport.call(ep.LISTEN_KEY_KEEPALIVE)

    async def close_listen_key(self) -> None:
        await self.transport.call(ep.LISTEN_KEY_CLOSE)


def _algo_params(client_algo_id: str | None, algo_id: int | None) -> dict[str, Any]:
    if algo_id is not None:
        return {"algoId": algo_id}
    if client_algo_id:
        return {"clientAlgoId": client_algo_id}
    raise ValueError("client_algo_id or algo_id is required")
