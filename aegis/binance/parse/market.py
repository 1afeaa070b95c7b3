"""Market data payloads: klines (REST rows and stream frames), server time, exchangeInfo."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from loguru import logger

from aegis.binance import wire
from aegis.binance.errors import ParseError
from aegis.binance.parse.common import FAILURES, Raw, finite, guarded
from aegis.binance.ratelimit import RateLimits
from aegis.domain import (
    ZERO,
    Candle,
    KlineEvent,
    SymbolFilters,
)

# --- market data -------------------------------------------------------------------------

_KLINE_ROWS = msgspec.json.Decoder(list[wire.KlineRow])


KlineTick = wire.WsKlineTick
_KLINE_TICK = msgspec.json.Decoder(wire.WsKlineTickCombined)
_KLINE_TICK_RAW = msgspec.json.Decoder(wire.WsKlineTick)
_DATA_KEY = b'"data"'


def parse_kline_tick(raw: Raw) -> KlineTick:
    """The market feed's hot path: one decode per frame, numbers kept as text (see WsKlineText)."""
    try:
        try:
            return _KLINE_TICK.decode(raw).data
        except msgspec.ValidationError as combined:
            try:
                return _KLINE_TICK_RAW.decode(raw)
            except msgspec.ValidationError as plain:
                # name what is wrong with the shape the frame has (combined or raw), not the other one
                text = raw if isinstance(raw, bytes) else raw.encode()
                raise (combined if _DATA_KEY in text else plain) from None
    except FAILURES as exc:
        raise ParseError(f"kline frame: {exc}", raw) from exc


def tick_candle(tick: KlineTick) -> Candle:
    """The Candle of a decoded frame (a closed one, in practice): exact Decimals, finite or ParseError."""
    k = tick.k
    try:
        o, h, lo, c = Decimal(k.o), Decimal(k.h), Decimal(k.l), Decimal(k.c)
        v, q, vb, qb = Decimal(k.v), Decimal(k.q), Decimal(k.V), Decimal(k.Q)
        finite(o, h, lo, c, v, q, vb, qb)
    except FAILURES as exc:
        raise ParseError(f"kline frame: {exc}", msgspec.json.encode(tick)) from exc
    return Candle(k.s, k.t, o, h, lo, c, v, k.T, q, k.n, vb, qb)


def parse_kline_frame(raw: Raw) -> KlineEvent:
    """A kline stream frame, combined (``{"stream","data"}``) or raw, as a KlineEvent (one decode)."""
    tick = parse_kline_tick(raw)
    try:
        return KlineEvent(tick.E, tick_candle(tick), tick.k.x)
    except ParseError as exc:
        raise ParseError(exc.message, raw) from exc


@guarded
def parse_klines(raw: Raw, symbol: str) -> list[Candle]:
    """GET /fapi/v1/klines rows, oldest first. The last row may still be forming."""
    out = []
    for r in _KLINE_ROWS.decode(raw):
        finite(r.open, r.high, r.low, r.close, r.volume, r.quote_volume, r.taker_buy_base, r.taker_buy_quote)
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


@guarded
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
        finite(value)
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


@guarded
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
        except FAILURES as exc:
            label = (
                candidate[:80].decode("utf-8", "replace")
                if isinstance(candidate, bytes)
                else candidate.symbol
            )
            skipped.append(label)
            logger.warning("exchangeInfo: symbol skipped ({})", exc)
    return ExchangeInfo(symbols, _rate_limits(rate_limits), tuple(skipped))


