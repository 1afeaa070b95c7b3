"""The seam between the exchange core and its streams.

The core (matching, accounts, market replay) publishes Binance-shaped payloads here; the
WebSocket side subscribes and fans them out. Callbacks are synchronous and must not block:
a subscriber that needs to do I/O enqueues.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Payload = dict[str, Any]
UserListener = Callable[[str, Payload], None]
KlineListener = Callable[[str, Payload], None]


class Bus:
    def __init__(self) -> None:
        self._user: list[UserListener] = []
        self._kline: list[KlineListener] = []
        self._diverted: dict[str, Callable[[Payload], None]] = {}

    def on_user_event(self, listener: UserListener) -> None:
        """``listener(api_key, event)`` for every user-data event (ORDER_TRADE_UPDATE, ...)."""
        self._user.append(listener)

    def on_kline(self, listener: KlineListener) -> None:
        """``listener(symbol, event)`` for every kline event (the unwrapped ``e: kline`` payload)."""
        self._kline.append(listener)

    def publish_user(self, api_key: str, event: Payload) -> None:
        if self._diverted and api_key in self._diverted:
            self._diverted[api_key](event)
            return
        for listener in self._user:
            listener(api_key, event)

    @contextmanager
    def diverted(self, api_key: str, sink: Callable[[Payload], None]) -> Iterator[None]:
        """While the block runs, ``api_key``'s user events go to ``sink`` instead of the listeners
        (a fault holds them back to publish later)."""
        self._diverted[api_key] = sink
        try:
            yield
        finally:
            del self._diverted[api_key]

    def publish_kline(self, symbol: str, event: Payload) -> None:
        for listener in self._kline:
            listener(symbol, event)
