"""The seam between the exchange core and its streams.

The core (matching, accounts, market replay) publishes Binance-shaped payloads here; the
WebSocket side subscribes and fans them out. Callbacks are synchronous and must not block:
a subscriber that needs to do I/O enqueues.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]
UserListener = Callable[[str, Payload], None]
KlineListener = Callable[[str, Payload], None]


class Bus:
    def __init__(self) -> None:
        self._user: list[UserListener] = []
        self._kline: list[KlineListener] = []

    def on_user_event(self, listener: UserListener) -> None:
        """``listener(api_key, event)`` for every user-data event (ORDER_TRADE_UPDATE, ...)."""
        self._user.append(listener)

    def on_kline(self, listener: KlineListener) -> None:
        """``listener(symbol, event)`` for every kline event (the unwrapped ``e: kline`` payload)."""
        self._kline.append(listener)

    def publish_user(self, api_key: str, event: Payload) -> None:
        for listener in self._user:
            listener(api_key, event)

    def publish_kline(self, symbol: str, event: Payload) -> None:
        for listener in self._kline:
            listener(symbol, event)
