"""The bare typed decode of a kline frame (every field Decimal/int, no domain objects): the ceiling
the adapter's decode is compared against in the benchmarks."""

from __future__ import annotations

from decimal import Decimal

import msgspec

__all__ = ["WsKline", "WsKlineCombined", "WsKlineEvent"]


class WsKline(msgspec.Struct, gc=False):
    """Only what a Candle needs: every field decoded is paid for on every frame (f, L, i, B skipped)."""

    t: int
    T: int
    s: str
    o: Decimal
    c: Decimal
    h: Decimal
    l: Decimal  # noqa: E741 - Binance's key
    v: Decimal
    n: int
    x: bool
    q: Decimal
    V: Decimal
    Q: Decimal


class WsKlineEvent(msgspec.Struct, gc=False):
    """A kline event; another event type lacks ``k`` and fails to decode."""

    E: int
    k: WsKline


class WsKlineCombined(msgspec.Struct, gc=False):
    """``/market/stream?streams=...`` wraps every event as ``{"stream", "data"}``."""

    stream: str
    data: WsKlineEvent


