"""Learning the fate of a request whose answer was lost (timeout after sending, 503 "Unknown error",
-1007): did the order land or not?

Binance can keep a new order invisible to queries for seconds to minutes (freqtrade #12681), so one
"order does not exist" proves nothing. The order is looked for, repeatedly over a window, in every
place it can show: the state store (the user stream may deliver it first), a query by client id,
the symbol's open orders, and the trades since it was sent (an unknown order id among them is
queried for its client id). Only when every look over the whole window answered "not there" is
the order declared absent, and only then may the same client id be sent again.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

import msgspec
from loguru import logger

from aegis.binance.errors import ExchangeError, OrderNotFound
from aegis.clock import TimeSource
from aegis.domain import AlgoOrder, Fill, Order
from aegis.state import StateStore

__all__ = ["Fate", "FateKind", "OrderLookup", "find_order"]


class OrderLookup(Protocol):
    """The queries that can find an order (``aegis.binance.BinanceRest`` has them)."""

    async def get_order(self, symbol: str, *, client_order_id: str | None = None, order_id: int | None = None) -> Order: ...

    async def open_orders(self, symbol: str | None = None) -> list[Order]: ...

    async def user_trades(self, symbol: str, *, start_ms: int | None = None, order_id: int | None = None) -> list[Fill]: ...

    async def get_algo_order(self, *, client_algo_id: str | None = None, algo_id: int | None = None) -> AlgoOrder: ...

    async def open_algo_orders(self, symbol: str | None = None) -> list[AlgoOrder]: ...


class FateKind(StrEnum):
    FOUND = "found"  # it landed: here is its state
    ABSENT = "absent"  # every look over the whole window said it is not there: safe to send again
    UNKNOWN = "unknown"  # the exchange could not be asked (errors): neither send again nor forget


class Fate(msgspec.Struct, frozen=True):
    kind: FateKind
    order: Order | None = None
    algo: AlgoOrder | None = None
    looks: int = 0


async def find_order(
    rest: OrderLookup,
    state: StateStore,
    symbol: str,
    client_id: str,
    *,
    algo: bool,
    sent_ms: int,
    window_s: float,
    poll_s: float,
    clock: TimeSource,
) -> Fate:
    """Look for ``client_id`` until found or the window is over (see the module docstring); the
    window and the polls are ``clock`` (exchange) seconds, as the exchange's query lag is."""
    deadline = clock.monotonic() + window_s
    looks = 0
    while True:
        looks += 1
        answered = True
        try:
            fate = await (_find_algo(rest, state, client_id, symbol) if algo else _find(rest, state, symbol, client_id, sent_ms))
        except ExchangeError as exc:
            answered, fate = False, None
            logger.warning("looking for order {} failed: {}", client_id, exc)
        if fate is not None:
            return msgspec.structs.replace(fate, looks=looks)
        if clock.monotonic() >= deadline:
            # Absent only if the exchange answered "not there" at the end of the window too.
            return Fate(FateKind.ABSENT if answered else FateKind.UNKNOWN, looks=looks)
        await clock.sleep(min(poll_s, max(0.0, deadline - clock.monotonic())))


async def _find(rest: OrderLookup, state: StateStore, symbol: str, client_id: str, sent_ms: int) -> Fate | None:
    known = state.order(client_id)
    if known is not None and known.update_time_ms >= sent_ms - 1000:
        return Fate(FateKind.FOUND, order=known)
    try:
        return Fate(FateKind.FOUND, order=await rest.get_order(symbol, client_order_id=client_id))
    except OrderNotFound:
        pass
    for order in await rest.open_orders(symbol):
        if order.client_order_id == client_id:
            return Fate(FateKind.FOUND, order=order)
    # Filled at once and still invisible to the order query: its trades may show an order id we do not know.
    strangers = {t.order_id for t in await rest.user_trades(symbol, start_ms=sent_ms - 1000)}
    for order_id in sorted(strangers):
        if state.order_by_id(symbol, order_id) is not None:
            continue
        order = await rest.get_order(symbol, order_id=order_id)
        if order.client_order_id == client_id:
            return Fate(FateKind.FOUND, order=order)
    return None


async def _find_algo(rest: OrderLookup, state: StateStore, client_id: str, symbol: str) -> Fate | None:
    known = state.algo_order(client_id)
    if known is not None:
        return Fate(FateKind.FOUND, algo=known)
    try:
        return Fate(FateKind.FOUND, algo=await rest.get_algo_order(client_algo_id=client_id))
    except OrderNotFound:
        pass
    for algo in await rest.open_algo_orders(symbol):
        if algo.client_algo_id == client_id:
            return Fate(FateKind.FOUND, algo=algo)
    return None
