"""Small builders of domain values for tests."""

from __future__ import annotations

import asyncio
import zlib
from decimal import Decimal

from aegis.domain import (
    MINUTE_MS,
    Balance,
    Candle,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)


def candle(symbol: str, open_time_ms: int, close: str = "100.0") -> Candle:
    price = Decimal(close)
    return Candle(
        symbol=symbol,
        open_time_ms=open_time_ms,
        open=price,
        high=price,
        low=price,
        close=price,
        volume=Decimal("1.000"),
        close_time_ms=open_time_ms + MINUTE_MS - 1,
        quote_volume=price,
        trades=1,
        taker_buy_base=Decimal("0.500"),
        taker_buy_quote=price / 2,
    )


def order(
    client_id: str, status: OrderStatus = OrderStatus.NEW, qty: str = "0.010", order_id: int | None = None
) -> Order:
    """A LIMIT BUY; each client id gets its own 19-digit exchange order id unless one is given."""
    return Order(
        symbol="BTCUSDT",
        order_id=order_id if order_id is not None else 8389765739703625592 + zlib.crc32(client_id.encode()),
        client_order_id=client_id,
        side=Side.BUY,
        type=OrderType.LIMIT,
        status=status,
        price=Decimal("50000.00"),
        orig_qty=Decimal(qty),
        executed_qty=Decimal("0"),
        avg_price=Decimal("0"),
        time_in_force=TimeInForce.GTC,
        reduce_only=False,
        update_time_ms=1,
    )


def position(symbol: str, amount: str, entry: str = "100.0") -> Position:
    return Position(symbol=symbol, amount=Decimal(amount), entry_price=Decimal(entry))


def balance(asset: str, wallet: str) -> Balance:
    return Balance(asset=asset, wallet_balance=Decimal(wallet))


class StillClock:
    """Exchange and engine time in one that stands still until a test moves ``now``; sleeps only yield (and are recorded)."""

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms
        self.slept: list[float] = []

    def now_ms(self) -> int:
        return self.now

    def monotonic(self) -> float:
        return self.now / 1000

    def wall_seconds(self, seconds: float) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)
