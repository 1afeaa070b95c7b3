"""The futures REST endpoints the engine uses: route, security and cost (facts section 5).

A cost is decided before the request is sent, so the governor can hold a caller back
instead of letting the exchange reject it. Weights that depend on a parameter (klines
``limit``, openOrders with or without ``symbol``) are computed here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aegis.binance.constants import KLINES_DEFAULT_LIMIT, klines_weight
from aegis.binance.ratelimit import Cost, Priority

__all__ = ["Endpoint"]

# ccxt's names for the URL prefixes of USD-M futures; nothing else is ever configured.
API_PREFIXES: Mapping[str, str] = {
    "fapiPublic": "/fapi/v1",
    "fapiPublicV2": "/fapi/v2",
    "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2",
    "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data",
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    api: str
    path: str
    weight: int
    orders: int = 0
    priority: Priority = Priority.ACCOUNT

    @property
    def signed(self) -> bool:
        """TRADE / USER_DATA need timestamp + signature; listenKey needs only the key header."""
        return self.api.startswith("fapiPrivate") and self.path != "listenKey"

    @property
    def label(self) -> str:
        """For logs and errors: never the query string (it carries the signature)."""
        return f"{self.method} {API_PREFIXES.get(self.api, self.api)}/{self.path}"

    def cost(self, params: Mapping[str, Any]) -> Cost:
        if self.path == "klines":
            return Cost(klines_weight(int(params.get("limit", KLINES_DEFAULT_LIMIT))))
        if self.path in ("openOrders", "openAlgoOrders") and "symbol" not in params:
            return Cost(40)
        return Cost(self.weight, self.orders)


TIME = Endpoint("GET", "fapiPublic", "time", 1, priority=Priority.ORDER)
EXCHANGE_INFO = Endpoint("GET", "fapiPublic", "exchangeInfo", 1, priority=Priority.MARKET_DATA)
KLINES = Endpoint("GET", "fapiPublic", "klines", 5, priority=Priority.BACKFILL)
ORDER_NEW = Endpoint("POST", "fapiPrivate", "order", 0, orders=1, priority=Priority.ORDER)
ORDER_CANCEL = Endpoint("DELETE", "fapiPrivate", "order", 1, priority=Priority.ORDER)
ORDER_GET = Endpoint("GET", "fapiPrivate", "order", 1)
OPEN_ORDERS = Endpoint("GET", "fapiPrivate", "openOrders", 1)
USER_TRADES = Endpoint("GET", "fapiPrivate", "userTrades", 5)
ACCOUNT = Endpoint("GET", "fapiPrivateV3", "account", 5)
POSITION_RISK = Endpoint("GET", "fapiPrivateV3", "positionRisk", 5)
LISTEN_KEY_NEW = Endpoint("POST", "fapiPrivate", "listenKey", 1)
LISTEN_KEY_KEEPALIVE = Endpoint("PUT", "fapiPrivate", "listenKey", 1)
LISTEN_KEY_CLOSE = Endpoint("DELETE", "fapiPrivate", "listenKey", 1)
LEVERAGE = Endpoint("POST", "fapiPrivate", "leverage", 1)
ALGO_NEW = Endpoint("POST", "fapiPrivate", "algoOrder", 1, orders=1, priority=Priority.ORDER)
ALGO_CANCEL = Endpoint("DELETE", "fapiPrivate", "algoOrder", 1, priority=Priority.ORDER)
ALGO_GET = Endpoint("GET", "fapiPrivate", "algoOrder", 1)
CANCEL_ALL = Endpoint("DELETE", "fapiPrivate", "allOpenOrders", 1, priority=Priority.ORDER)
OPEN_ALGO_ORDERS = Endpoint("GET", "fapiPrivate", "openAlgoOrders", 1)
CANCEL_ALL_ALGO = Endpoint("DELETE", "fapiPrivate", "algoOpenOrders", 1, priority=Priority.ORDER)
POSITION_MODE = Endpoint("GET", "fapiPrivate", "positionSide/dual", 30)
COUNTDOWN_CANCEL_ALL = Endpoint("POST", "fapiPrivate", "countdownCancelAll", 10, priority=Priority.ORDER)
INCOME = Endpoint("GET", "fapiPrivate", "income", 30)
