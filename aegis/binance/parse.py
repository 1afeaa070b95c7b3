"""Binance payloads -> domain types, with Decimal money and one error type for bad input.

Every function takes the raw bytes (or str) as received, decodes them with msgspec into
the wire Structs of ``aegis.binance.wire`` (type-checked in C) and maps them to
``aegis.domain``. Whatever is wrong with a payload -- truncated, mistyped, a NaN price, an
unknown enum value -- surfaces as ``ParseError`` carrying the raw payload, so a stream task
can log it and move on instead of dying.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, ParamSpec, TypeVar

import msgspec
from loguru import logger

from aegis.binance import wire
from aegis.binance.errors import ParseError
from aegis.binance.ratelimit import RateLimits
from aegis.domain import (
    ZERO,
    AccountConfigUpdate,
    AccountUpdate,
    AlgoOrder,
    AlgoUpdate,
    Balance,
    Candle,
    ExecutionType,
    Fill,
    KlineEvent,
    ListenKeyExpired,
    MarginCall,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Side,
    SymbolFilters,
    TimeInForce,
    TradeLite,
    UserEvent,
)

__all__ = [
    "ExchangeInfo",
    "KlineTick",
    "parse_account_balances",
    "parse_algo_cancel",
    "parse_algo_order",
    "parse_algo_orders",
    "parse_balances",
    "parse_exchange_info",
    "parse_kline_frame",
    "parse_kline_tick",
    "parse_klines",
    "parse_leverage",
    "parse_listen_key",
    "parse_order",
    "parse_orders",
    "parse_position_mode",
    "parse_position_risk",
    "parse_server_time",
    "parse_user_event",
    "parse_user_trades",
    "tick_candle",
]

Raw = bytes | str
P = ParamSpec("P")
T = TypeVar("T")

_FAILURES = (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError, KeyError, InvalidOperation)


def _guarded(func: Callable[P, T]) -> Callable[P, T]:
    """Turn any failure while parsing into ParseError carrying the first argument (the raw payload)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except ParseError:
            raise
        except _FAILURES as exc:
            raw = args[0] if args else None
            raise ParseError(f"{func.__name__}: {exc}", raw) from exc

    return wrapper


def _finite(*values: Decimal) -> None:
    """msgspec accepts "NaN" and "Infinity" as Decimals; no price or quantity may be either."""
    for value in values:
        if not value.is_finite():
            raise ValueError(f"non-finite decimal {value!r}")


def _tif(value: str | None) -> TimeInForce | None:
    """GTE_GTC (closePosition orders) and future values are not ours to reject."""
    if value is None:
        return None
    try:
        return TimeInForce(value)
    except ValueError:
        return None


_LIQUIDATION_STATUSES = frozenset({"NEW_INSURANCE", "NEW_ADL"})


def _status(value: str, executed: Decimal, original: Decimal) -> OrderStatus:
    """Binance's liquidation statuses (NEW_INSURANCE, NEW_ADL) become what the quantities say.

    Dropping such an event as unparseable would lose the fill that closed our position.
    """
    if value in _LIQUIDATION_STATUSES:
        if executed > 0 and executed >= original:
            return OrderStatus.FILLED
        return OrderStatus.PARTIALLY_FILLED if executed > 0 else OrderStatus.NEW
    return OrderStatus(value)


def _int(value: int | str) -> int:
    return value if isinstance(value, int) else int(value)


# --- market data -------------------------------------------------------------------------

_KLINE_COMBINED = msgspec.json.Decoder(wire.WsKlineCombined)
_KLINE_EVENT = msgspec.json.Decoder(wire.WsKlineEvent)
_KLINE_ROWS = msgspec.json.Decoder(list[wire.KlineRow])


def parse_kline_frame(raw: Raw) -> KlineEvent:
    """A kline stream frame, combined (``{"stream","data"}``) or raw, into a KlineEvent.

    The hot path: one typed msgspec decode, then the domain objects. Closed candles (x=true),
    the ones that become history, are also checked for NaN / Infinity; forming updates are
    previews and skip that check to keep the per-frame cost near the bare decode.
    """
    try:
        try:
            event = _KLINE_COMBINED.decode(raw).data
        except msgspec.ValidationError:
            event = _KLINE_EVENT.decode(raw)
        k = event.k
        if k.x and not (
            k.o.is_finite()
            and k.h.is_finite()
            and k.l.is_finite()
            and k.c.is_finite()
            and k.v.is_finite()
            and k.q.is_finite()
            and k.V.is_finite()
            and k.Q.is_finite()
        ):
            raise ValueError("non-finite decimal in a closed kline")
        return KlineEvent(event.E, Candle(k.s, k.t, k.o, k.h, k.l, k.c, k.v, k.T, k.q, k.n, k.V, k.Q), k.x)
    except _FAILURES as exc:
        raise ParseError(f"parse_kline_frame: {exc}", raw) from exc


KlineTick = wire.WsKlineTick
_KLINE_TICK = msgspec.json.Decoder(wire.WsKlineTickCombined)
_KLINE_TICK_RAW = msgspec.json.Decoder(wire.WsKlineTick)


def parse_kline_tick(raw: Raw) -> KlineTick:
    """The market feed's hot path: one decode per frame, numbers kept as text (see WsKlineText)."""
    try:
        try:
            return _KLINE_TICK.decode(raw).data
        except msgspec.ValidationError:
            return _KLINE_TICK_RAW.decode(raw)
    except _FAILURES as exc:
        raise ParseError(f"kline frame: {exc}", raw) from exc


def tick_candle(tick: KlineTick) -> Candle:
    """The Candle of a decoded frame (a closed one, in practice): exact Decimals, finite or ParseError."""
    k = tick.k
    try:
        o, h, lo, c = Decimal(k.o), Decimal(k.h), Decimal(k.l), Decimal(k.c)
        v, q, vb, qb = Decimal(k.v), Decimal(k.q), Decimal(k.V), Decimal(k.Q)
        _finite(o, h, lo, c, v, q, vb, qb)
    except _FAILURES as exc:
        raise ParseError(f"kline frame: {exc}", msgspec.json.encode(tick)) from exc
    return Candle(k.s, k.t, o, h, lo, c, v, k.T, q, k.n, vb, qb)


@_guarded
def parse_klines(raw: Raw, symbol: str) -> list[Candle]:
    """GET /fapi/v1/klines rows, oldest first. The last row may still be forming."""
    out = []
    for r in _KLINE_ROWS.decode(raw):
        _finite(r.open, r.high, r.low, r.close, r.volume, r.quote_volume, r.taker_buy_base, r.taker_buy_quote)
        out.append(
            Candle(
                symbol,
                r.open_time,
                r.open,
                r.high,
                r.low,
                r.close,
                r.volume,
                r.close_time,
                r.quote_volume,
                r.trades,
                r.taker_buy_base,
                r.taker_buy_quote,
            )
        )
    return out


_SERVER_TIME = msgspec.json.Decoder(wire.ServerTime)


@_guarded
def parse_server_time(raw: Raw) -> int:
    return _SERVER_TIME.decode(raw).serverTime


# --- exchangeInfo ------------------------------------------------------------------------


class ExchangeInfo(msgspec.Struct, frozen=True):
    """Every listed symbol's filters (trade only ``.trading`` ones) and the published limits."""

    symbols: dict[str, SymbolFilters]
    rate_limits: RateLimits
    skipped: tuple[str, ...] = ()


_EXCHANGE_INFO = msgspec.json.Decoder(wire.ExchangeInfoBody)
_EXCHANGE_INFO_TYPED = msgspec.json.Decoder(wire.ExchangeInfoTyped)
_SYMBOL = msgspec.json.Decoder(wire.SymbolInfo)


def _rate_limits(items: list[wire.RateLimit]) -> RateLimits:
    default = RateLimits()
    weight, o10, o1m = default.weight_per_minute, default.orders_per_10s, default.orders_per_minute
    for rl in items:
        if rl.rateLimitType == "REQUEST_WEIGHT" and rl.interval == "MINUTE" and rl.intervalNum == 1:
            weight = rl.limit
        elif rl.rateLimitType == "ORDERS" and rl.interval == "SECOND" and rl.intervalNum == 10:
            o10 = rl.limit
        elif rl.rateLimitType == "ORDERS" and rl.interval == "MINUTE" and rl.intervalNum == 1:
            o1m = rl.limit
    return RateLimits(weight, o10, o1m)


def _symbol_filters(s: wire.SymbolInfo) -> SymbolFilters:
    by_type = {f.filterType: f for f in s.filters}  # unknown filter types are simply unused
    price, lot = by_type["PRICE_FILTER"], by_type["LOT_SIZE"]
    market = by_type.get("MARKET_LOT_SIZE", lot)
    notional = by_type.get("MIN_NOTIONAL")
    percent = by_type.get("PERCENT_PRICE")
    max_orders = by_type.get("MAX_NUM_ORDERS")

    def need(value: Decimal | None, name: str) -> Decimal:
        if value is None:
            raise ValueError(f"{s.symbol}: {name} missing")
        _finite(value)
        return value

    return SymbolFilters(
        symbol=s.symbol,
        status=s.status,
        base_asset=s.baseAsset,
        quote_asset=s.quoteAsset,
        contract_type=s.contractType,
        tick_size=need(price.tickSize, "tickSize"),
        min_price=need(price.minPrice, "minPrice"),
        max_price=need(price.maxPrice, "maxPrice"),
        step_size=need(lot.stepSize, "stepSize"),
        min_qty=need(lot.minQty, "minQty"),
        max_qty=need(lot.maxQty, "maxQty"),
        market_step_size=need(market.stepSize, "MARKET_LOT_SIZE.stepSize"),
        market_min_qty=need(market.minQty, "MARKET_LOT_SIZE.minQty"),
        market_max_qty=need(market.maxQty, "MARKET_LOT_SIZE.maxQty"),
        min_notional=need(notional.notional, "notional") if notional else ZERO,
        percent_up=percent.multiplierUp if percent else None,
        percent_down=percent.multiplierDown if percent else None,
        max_num_orders=max_orders.limit if max_orders else None,
        price_precision=s.pricePrecision,
        quantity_precision=s.quantityPrecision,
    )


@_guarded
def parse_exchange_info(raw: Raw) -> ExchangeInfo:
    """GET /fapi/v1/exchangeInfo. A symbol we cannot read is skipped (and logged), not fatal."""
    symbols: dict[str, SymbolFilters] = {}
    skipped: list[str] = []
    candidates: list[wire.SymbolInfo | bytes]
    try:
        typed = _EXCHANGE_INFO_TYPED.decode(raw)
        rate_limits, candidates = typed.rateLimits, list(typed.symbols)
    except msgspec.ValidationError:  # something is off somewhere: go symbol by symbol, keep the good ones
        body = _EXCHANGE_INFO.decode(raw)
        rate_limits, candidates = body.rateLimits, [bytes(item) for item in body.symbols]
    for candidate in candidates:
        try:
            info = _SYMBOL.decode(candidate) if isinstance(candidate, bytes) else candidate
            symbols[info.symbol] = _symbol_filters(info)
        except _FAILURES as exc:
            label = (
                candidate[:80].decode("utf-8", "replace")
                if isinstance(candidate, bytes)
                else candidate.symbol
            )
            skipped.append(label)
            logger.warning("exchangeInfo: symbol skipped ({})", exc)
    return ExchangeInfo(symbols, _rate_limits(rate_limits), tuple(skipped))


# --- orders, trades, account -------------------------------------------------------------

_ORDER = msgspec.json.Decoder(wire.OrderResponse)
_ORDERS = msgspec.json.Decoder(list[wire.OrderResponse])
_ALGO = msgspec.json.Decoder(wire.AlgoOrderResponse)
_ALGO_CANCEL = msgspec.json.Decoder(wire.AlgoCancel)
_ALGOS = msgspec.json.Decoder(list[wire.AlgoOrderResponse])
_POSITION_MODE = msgspec.json.Decoder(wire.PositionMode)
_TRADES = msgspec.json.Decoder(list[wire.UserTrade])
_POSITIONS = msgspec.json.Decoder(list[wire.PositionRisk])
_ACCOUNT = msgspec.json.Decoder(wire.Account)
_BALANCES = msgspec.json.Decoder(list[wire.BalanceEntry])
_LISTEN_KEY = msgspec.json.Decoder(wire.ListenKey)
_LEVERAGE = msgspec.json.Decoder(wire.Leverage)


def _order(w: wire.OrderResponse) -> Order:
    _finite(w.price, w.origQty, w.executedQty, w.avgPrice, w.stopPrice)
    return Order(
        symbol=w.symbol,
        order_id=w.orderId,
        client_order_id=w.clientOrderId,
        side=Side(w.side),
        type=OrderType(w.type),
        status=_status(w.status, w.executedQty, w.origQty),
        price=w.price,
        orig_qty=w.origQty,
        executed_qty=w.executedQty,
        avg_price=w.avgPrice,
        time_in_force=_tif(w.timeInForce),
        reduce_only=w.reduceOnly,
        update_time_ms=w.updateTime or w.time,
        stop_price=w.stopPrice,
        close_position=w.closePosition,
        position_side=w.positionSide,
    )


@_guarded
def parse_order(raw: Raw) -> Order:
    """POST / GET / DELETE /fapi/v1/order."""
    return _order(_ORDER.decode(raw))


@_guarded
def parse_orders(raw: Raw) -> list[Order]:
    """GET /fapi/v1/openOrders (and allOrders)."""
    return [_order(w) for w in _ORDERS.decode(raw)]


def _optional_id(value: int | str | None) -> int | None:
    if value is None or value == "" or value == 0:
        return None
    return _int(value)


@_guarded
def parse_algo_order(raw: Raw) -> AlgoOrder:
    """POST / GET /fapi/v1/algoOrder."""
    return _algo(_ALGO.decode(raw))


@_guarded
def parse_algo_orders(raw: Raw) -> list[AlgoOrder]:
    """GET /fapi/v1/openAlgoOrders."""
    return [_algo(w) for w in _ALGOS.decode(raw)]


@_guarded
def parse_position_mode(raw: Raw) -> bool:
    """GET /fapi/v1/positionSide/dual: True when the account is in hedge mode."""
    flag = _POSITION_MODE.decode(raw).dualSidePosition
    if isinstance(flag, str):
        if flag.lower() not in ("true", "false"):
            raise ValueError(f"dualSidePosition {flag!r}")
        return flag.lower() == "true"
    return flag


def _algo(w: wire.AlgoOrderResponse) -> AlgoOrder:
    _finite(w.quantity, w.triggerPrice, w.price)
    return AlgoOrder(
        symbol=w.symbol,
        algo_id=w.algoId,
        client_algo_id=w.clientAlgoId,
        side=Side(w.side),
        type=OrderType(w.orderType),
        status=w.algoStatus,
        quantity=w.quantity,
        trigger_price=w.triggerPrice,
        price=w.price,
        reduce_only=w.reduceOnly,
        close_position=w.closePosition,
        update_time_ms=w.updateTime,
        triggered_order_id=_optional_id(w.actualOrderId),
        position_side=w.positionSide,
    )


@_guarded
def parse_algo_cancel(raw: Raw) -> int:
    """DELETE /fapi/v1/algoOrder: the cancelled algo id (the final state arrives as ALGO_UPDATE)."""
    return _ALGO_CANCEL.decode(raw).algoId


@_guarded
def parse_user_trades(raw: Raw) -> list[Fill]:
    """GET /fapi/v1/userTrades: fills without client order ids (Binance does not return them)."""
    out = []
    for t in _TRADES.decode(raw):
        _finite(t.price, t.qty, t.commission, t.realizedPnl)
        out.append(
            Fill(
                symbol=t.symbol,
                order_id=t.orderId,
                client_order_id="",
                trade_id=t.id,
                side=Side(t.side),
                price=t.price,
                quantity=t.qty,
                commission=t.commission,
                commission_asset=t.commissionAsset,
                realized_pnl=t.realizedPnl,
                maker=t.maker,
                time_ms=t.time,
            )
        )
    return out


@_guarded
def parse_position_risk(raw: Raw) -> list[Position]:
    """GET /fapi/v3/positionRisk: one entry per symbol and side with a position."""
    out = []
    for p in _POSITIONS.decode(raw):
        _finite(p.positionAmt, p.entryPrice, p.unRealizedProfit)
        out.append(
            Position(
                symbol=p.symbol,
                amount=p.positionAmt,
                entry_price=p.entryPrice,
                unrealized_pnl=p.unRealizedProfit,
                update_time_ms=_int(p.updateTime),
                position_side=p.positionSide,
            )
        )
    return out


@_guarded
def parse_account_balances(raw: Raw) -> list[Balance]:
    """GET /fapi/v3/account ``assets`` (per margin asset)."""
    out = []
    for a in _ACCOUNT.decode(raw).assets:
        _finite(a.walletBalance)
        out.append(
            Balance(a.asset, a.walletBalance, a.crossWalletBalance, a.availableBalance, _int(a.updateTime))
        )
    return out


@_guarded
def parse_balances(raw: Raw) -> list[Balance]:
    """GET /fapi/v3/balance."""
    out = []
    for b in _BALANCES.decode(raw):
        _finite(b.balance)
        out.append(Balance(b.asset, b.balance, b.crossWalletBalance, b.availableBalance, _int(b.updateTime)))
    return out


@_guarded
def parse_listen_key(raw: Raw) -> str:
    """POST / PUT /fapi/v1/listenKey."""
    key = _LISTEN_KEY.decode(raw).listenKey
    if not key:
        raise ValueError("empty listenKey")
    return key


@_guarded
def parse_leverage(raw: Raw) -> int:
    """POST /fapi/v1/leverage."""
    return _LEVERAGE.decode(raw).leverage


# --- user data stream --------------------------------------------------------------------


class _Head(msgspec.Struct):
    e: str = ""
    data: msgspec.Raw = msgspec.Raw(b"")


_HEAD = msgspec.json.Decoder(_Head)
_OTU = msgspec.json.Decoder(wire.WsOrderTradeUpdate)
_TRADE_LITE = msgspec.json.Decoder(wire.WsTradeLite)
_ACCOUNT_UPDATE = msgspec.json.Decoder(wire.WsAccountUpdate)
_MARGIN_CALL = msgspec.json.Decoder(wire.WsMarginCall)
_CONFIG = msgspec.json.Decoder(wire.WsAccountConfigUpdate)
_ALGO_UPDATE = msgspec.json.Decoder(wire.WsAlgoUpdate)
_EXPIRED = msgspec.json.Decoder(wire.WsListenKeyExpired)

_FILL_EXECUTIONS = (ExecutionType.TRADE, ExecutionType.CALCULATED)


def _order_trade_update(raw: Raw) -> OrderUpdate:
    ev = _OTU.decode(raw)
    o = ev.o
    _finite(o.q, o.p, o.ap, o.l, o.z, o.L, o.sp, o.n, o.rp)
    execution = ExecutionType(o.x)
    order = Order(
        symbol=o.s,
        order_id=o.i,
        client_order_id=o.c,
        side=Side(o.S),
        type=OrderType(o.o),
        status=_status(o.X, o.z, o.q),
        price=o.p,
        orig_qty=o.q,
        executed_qty=o.z,
        avg_price=o.ap,
        time_in_force=_tif(o.f),
        reduce_only=o.R,
        update_time_ms=o.T,
        stop_price=o.sp,
        close_position=o.cp,
        position_side=o.ps,
    )
    fill = None
    if execution in _FILL_EXECUTIONS and o.l > 0:
        fill = Fill(o.s, o.i, o.c, o.t, order.side, o.L, o.l, o.n, o.N, o.rp, o.m, o.T)
    expire = None if o.er in (None, "", 0, "0") else str(o.er)
    return OrderUpdate(ev.E, ev.T, execution, order, fill, expire)


def _trade_lite(raw: Raw) -> TradeLite:
    ev = _TRADE_LITE.decode(raw)
    _finite(ev.L, ev.l)
    # TRADE_LITE carries no fee and no realized PnL: the ORDER_TRADE_UPDATE for the same trade does.
    fill = Fill(ev.s, ev.i, ev.c, ev.t, Side(ev.S), ev.L, ev.l, ZERO, "", ZERO, ev.m, ev.T)
    return TradeLite(ev.E, fill)


def _account_update(raw: Raw) -> AccountUpdate:
    ev = _ACCOUNT_UPDATE.decode(raw)
    balances = []
    for b in ev.a.B:
        _finite(b.wb)
        balances.append(Balance(b.a, b.wb, b.cw, None, ev.T))
    positions = []
    for p in ev.a.P:
        _finite(p.pa, p.ep, p.up)
        positions.append(Position(p.s, p.pa, p.ep, p.up, ev.T, p.ps))
    return AccountUpdate(ev.E, ev.T, ev.a.m, tuple(balances), tuple(positions))


def _margin_call(raw: Raw) -> MarginCall:
    ev = _MARGIN_CALL.decode(raw)
    # MARGIN_CALL has no entry price; ZERO here means "not reported", not a real price.
    positions = tuple(Position(p.s, p.pa, ZERO, p.up, ev.E, p.ps) for p in ev.p)
    return MarginCall(ev.E, ev.cw, positions)


def _account_config(raw: Raw) -> AccountConfigUpdate:
    ev = _CONFIG.decode(raw)
    return AccountConfigUpdate(
        ev.E,
        symbol=ev.ac.s if ev.ac else None,
        leverage=ev.ac.l if ev.ac else None,
        multi_assets=ev.ai.j if ev.ai else None,
    )


def _algo_update(raw: Raw) -> AlgoUpdate:
    ev = _ALGO_UPDATE.decode(raw)
    o = ev.o
    _finite(o.q, o.tp)
    return AlgoUpdate(
        ev.E,
        o.s,
        o.aid,
        o.caid,
        Side(o.S),
        OrderType(o.o),
        o.X,
        o.q,
        o.tp,
        triggered_order_id=_optional_id(o.ai),
        reduce_only=o.R,
        close_position=o.cp,
        reject_reason=o.rm or None,
    )


def _listen_key_expired(raw: Raw) -> ListenKeyExpired:
    ev = _EXPIRED.decode(raw)
    return ListenKeyExpired(_int(ev.E), ev.listenKey)


_USER_PARSERS: dict[str, Callable[[Raw], Any]] = {
    "ORDER_TRADE_UPDATE": _order_trade_update,
    "TRADE_LITE": _trade_lite,
    "ACCOUNT_UPDATE": _account_update,
    "MARGIN_CALL": _margin_call,
    "ACCOUNT_CONFIG_UPDATE": _account_config,
    "ALGO_UPDATE": _algo_update,
    "listenKeyExpired": _listen_key_expired,
}

USER_EVENT_TYPES = frozenset(_USER_PARSERS)


@_guarded
def parse_user_event(raw: Raw) -> UserEvent | None:
    """A user data stream message into a domain event; None for event types we do not use.

    Unknown types (Binance adds some, e.g. STRATEGY_UPDATE, GRID_UPDATE) are not errors.
    A combined-stream envelope ``{"stream","data"}`` is unwrapped.
    """
    head = _HEAD.decode(raw)
    if not head.e and head.data:
        raw = bytes(head.data)
        head = _HEAD.decode(raw)
    parser = _USER_PARSERS.get(head.e)
    if parser is None:
        return None
    event: UserEvent = parser(raw)
    return event
