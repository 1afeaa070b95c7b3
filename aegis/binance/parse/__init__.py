"""Binance payloads -> domain types, with Decimal money and one error type for bad input.

Every function takes the raw bytes (or str) as received, decodes them with msgspec into the wire
Structs of ``aegis.binance.wire`` (type-checked in C) and maps them to ``aegis.domain``. Whatever
is wrong with a payload (truncated, mistyped, a NaN price, an unknown enum value) surfaces as
``ParseError`` carrying the raw payload, so a stream task can log it and move on instead of dying.
"""

from aegis.binance.parse.account import (
    parse_account_balances,
    parse_algo_cancel,
    parse_algo_order,
    parse_algo_orders,
    parse_income,
    parse_leverage,
    parse_listen_key,
    parse_order,
    parse_orders,
    parse_position_mode,
    parse_position_risk,
    parse_user_trades,
)
from aegis.binance.parse.events import parse_user_event
from aegis.binance.parse.market import (
    ExchangeInfo,
    KlineTick,
    parse_exchange_info,
    parse_kline_frame,
    parse_kline_tick,
    parse_klines,
    parse_server_time,
    tick_candle,
)

__all__ = [
    "ExchangeInfo",
    "KlineTick",
    "parse_account_balances",
    "parse_algo_cancel",
    "parse_algo_order",
    "parse_algo_orders",
    "parse_exchange_info",
    "parse_income",
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
