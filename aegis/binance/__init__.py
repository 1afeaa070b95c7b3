"""The adapter to Binance USD-M futures: the engine's one door to the exchange.

REST through ``BinanceRest`` (ccxt signing, our clock, governor and error classes),
streams through ``WsConnection``, payloads into ``aegis.domain`` types by ``parse``.
"""

from aegis.binance.clock import ServerClock
from aegis.binance.errors import (
    AuthError,
    ClockSkew,
    ExchangeError,
    ListenKeyNotFound,
    OrderNotFound,
    OutcomeUnknown,
    ParseError,
    RateLimited,
    Rejected,
    Retryable,
)
from aegis.binance.parse import ExchangeInfo
from aegis.binance.ratelimit import Cost, Priority, RateGovernor, RateLimits
from aegis.binance.rest import BinanceRest
from aegis.binance.ws import ConnectEvent, WsConnection, market_stream_url, split_streams, user_stream_url

__all__ = [
    "AuthError",
    "BinanceRest",
    "ClockSkew",
    "ConnectEvent",
    "Cost",
    "ExchangeError",
    "ExchangeInfo",
    "ListenKeyNotFound",
    "OrderNotFound",
    "OutcomeUnknown",
    "ParseError",
    "Priority",
    "RateGovernor",
    "RateLimited",
    "RateLimits",
    "Rejected",
    "Retryable",
    "ServerClock",
    "WsConnection",
    "market_stream_url",
    "split_streams",
    "user_stream_url",
]
