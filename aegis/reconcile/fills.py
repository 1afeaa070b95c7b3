"""Fills the user stream never delivered, fetched from the exchange's trade history.

A fill happens on the exchange whatever the engine is doing: while its user socket is dropped or
half-open, while its listenKey is expired, while the process is down (a protective stop that
triggers overnight). Reconciliation adopts the resulting positions, orders and balances, but a
snapshot has no fills, so without this the journal would lack them: realized PnL, fees and the
daily loss limit would be wrong, and the order that filled would never be journaled as closed.

``MissedFills.catch_up()`` runs with every reconciliation pass: per symbol it reads
``GET /fapi/v1/userTrades`` (weight 5) from a cursor a few minutes before the newest fill it
saw (trades of an order still invisible to queries show up late), and records each trade the
store does not know, with its order's client id (from the store, else ``GET /fapi/v1/order``),
so it reaches the journal like a streamed one. At start-up the cursor comes from the journal's
newest fill per symbol; with an empty journal, from now (no history is imported).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import msgspec
from loguru import logger

from aegis.clock import TimeSource
from aegis.domain import Fill, Order
from aegis.state import StateStore

__all__ = ["OVERLAP_MS", "FillHistory", "MissedFills", "missed_fills"]

# How far before the newest fill seen each look starts again: Binance has kept new orders (and so
# their trades) invisible to queries for up to minutes.
OVERLAP_MS = 5 * 60_000
_PAGE = 1000


class FillHistory(Protocol):
    """The REST calls a catch-up needs (``aegis.binance.BinanceRest`` has them)."""

    async def user_trades(self, symbol: str, *, start_ms: int | None = None, limit: int = 500) -> list[Fill]: ...

    async def get_order(self, symbol: str, *, client_order_id: str | None = None, order_id: int | None = None) -> Order: ...


class JournalFills(Protocol):
    async def fills(self, since_ms: int = 0) -> list[Fill]: ...


class ClockedHistory(FillHistory, Protocol):
    @property
    def server_clock(self) -> TimeSource: ...


async def missed_fills(
    rest: ClockedHistory, state: StateStore, symbols: Sequence[str], journal: JournalFills | None
) -> Callable[[], Awaitable[int]]:
    """The engine's catch-up for its reconciler, its cursors taken from ``journal``."""
    missed = MissedFills(rest, state, symbols, rest.server_clock)
    await missed.start_from(journal, rest.server_clock.now_ms())
    return missed.catch_up


class MissedFills:
    def __init__(self, rest: FillHistory, state: StateStore, symbols: Sequence[str], clock: TimeSource) -> None:
        self._rest = rest
        self._state = state
        self._symbols = list(symbols)
        self._clock = clock
        self._cursor: dict[str, int] = {}  # per symbol: newest trade time seen
        self._journaled: set[tuple[str, int, int]] = set()  # fills already journaled by an earlier life
        self.recovered = 0

    async def start_from(self, journal: JournalFills | None, now_ms: int) -> None:
        """Cursors from the journal's newest fill per symbol (``now_ms`` for a symbol without one)."""
        self._cursor = dict.fromkeys(self._symbols, now_ms)
        if journal is None:
            return
        newest: dict[str, int] = {}
        for fill in await journal.fills(0):
            newest[fill.symbol] = max(newest.get(fill.symbol, 0), fill.time_ms)
        for symbol, time_ms in newest.items():
            if symbol in self._cursor:
                self._cursor[symbol] = time_ms
        since = min(self._cursor.values(), default=now_ms) - OVERLAP_MS
        self._journaled = {(f.symbol, f.order_id, f.trade_id) for f in await journal.fills(since)}

    async def catch_up(self) -> int:
        """Record every trade since the cursors that the store does not know; how many there were."""
        if not self._cursor:
            self._cursor = dict.fromkeys(self._symbols, self._clock.now_ms())
        found = 0
        for symbol in self._symbols:
            found += await self._symbol(symbol)
        if found:
            logger.warning("{} fill(s) the user stream did not deliver, recorded from the trade history", found)
        self.recovered += found
        return found

    async def _symbol(self, symbol: str) -> int:
        start = self._cursor[symbol] - OVERLAP_MS
        found = 0
        while True:
            trades = await self._rest.user_trades(symbol, start_ms=start, limit=_PAGE)
            for trade in trades:
                self._cursor[symbol] = max(self._cursor[symbol], trade.time_ms)
                if await self._record(trade):
                    found += 1
            if len(trades) < _PAGE:
                return found
            start = trades[-1].time_ms

    async def _record(self, trade: Fill) -> bool:
        key = (trade.symbol, trade.order_id, trade.trade_id)
        known = self._state.fill(*key)
        if key in self._journaled or (known is not None and known.commission_asset):
            return False
        order = self._state.order_by_id(trade.symbol, trade.order_id)
        if order is None:
            order = await self._rest.get_order(trade.symbol, order_id=trade.order_id)
        fill = msgspec.structs.replace(trade, client_order_id=order.client_order_id)
        if not await self._state.record_fill(fill):
            return False  # known, or a streamed copy without its fee that this one completed
        logger.info("fill from the trade history: {} {} {} {} @ {} ({})", fill.symbol, fill.side, fill.quantity,
                    fill.client_order_id, fill.price, fill.trade_id)  # fmt: skip
        return True
