"""The engine's one in-memory state store, shared by its tasks.

Writers (user stream, order manager, reconciler, market feed) mutate it only through the
async methods below, each of which holds the store's lock and applies its whole change
without yielding, so a reader never sees half an update. Readers get snapshots: frozen
copies they cannot mutate and that do not change under them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import msgspec

from aegis.domain import Balance, Candle, Order, Position
from aegis.market.series import CandleSeries

StatusValue = str | int | float | bool | None


class Hole(msgspec.Struct, frozen=True):
    """A range of candle open times the exchange itself could not fill (never papered over)."""

    first_open_ms: int
    last_open_ms: int


class CandleSummary(msgspec.Struct, frozen=True):
    count: int
    first_open_ms: int | None
    last_open_ms: int | None
    holes: tuple[Hole, ...]


class StateSnapshot(msgspec.Struct, frozen=True):
    """A consistent view of the store at one instant."""

    positions: Mapping[str, Position]
    open_orders: Mapping[str, Order]
    balances: Mapping[str, Balance]
    candles: Mapping[str, CandleSummary]
    streams: Mapping[str, Mapping[str, StatusValue]]
    version: int


class StateStore:
    def __init__(self, max_candles: int = 5000) -> None:
        if max_candles < 1:
            raise ValueError("max_candles must be >= 1")
        self._lock = asyncio.Lock()
        self._max_candles = max_candles
        self._positions: dict[str, Position] = {}
        self._orders: dict[str, Order] = {}
        self._balances: dict[str, Balance] = {}
        self._candles: dict[str, CandleSeries] = {}
        self._streams: dict[str, dict[str, StatusValue]] = {}
        self._version = 0

    # --- account ---------------------------------------------------------------------

    async def apply_order(self, order: Order) -> None:
        """Record an order's latest state; closed orders leave the open-order book."""
        async with self._lock:
            self._put_order(order)
            self._version += 1

    async def apply_account(
        self, balances: Iterable[Balance] = (), positions: Iterable[Position] = ()
    ) -> None:
        """Apply changed balances and positions together (one ACCOUNT_UPDATE is one change)."""
        async with self._lock:
            for balance in balances:
                self._balances[balance.asset] = balance
            for position in positions:
                self._put_position(position)
            self._version += 1

    async def replace_account(
        self, positions: Iterable[Position], orders: Iterable[Order], balances: Iterable[Balance]
    ) -> None:
        """Adopt a full exchange snapshot (the reconciler's verdict) in one step."""
        async with self._lock:
            self._positions = {}
            for position in positions:
                self._put_position(position)
            self._orders = {}
            for order in orders:
                self._put_order(order)
            self._balances = {b.asset: b for b in balances}
            self._version += 1

    def _put_order(self, order: Order) -> None:
        if order.status.is_open:
            self._orders[order.client_order_id] = order
        else:
            self._orders.pop(order.client_order_id, None)

    def _put_position(self, position: Position) -> None:
        if position.is_flat:
            self._positions.pop(position.symbol, None)
        else:
            self._positions[position.symbol] = position

    # --- candles ---------------------------------------------------------------------

    async def add_candles(self, symbol: str, candles: Iterable[Candle]) -> int:
        """Append closed candles in open-time order; returns how many were new."""
        async with self._lock:
            series = self._series(symbol)
            added = sum(1 for candle in candles if series.append(candle))
            if added:
                self._version += 1
            return added

    async def record_hole(self, symbol: str, first_open_ms: int, last_open_ms: int) -> None:
        async with self._lock:
            self._series(symbol).holes.append((first_open_ms, last_open_ms))
            self._version += 1

    def candles(self, symbol: str) -> tuple[Candle, ...]:
        """The stored closed candles of ``symbol``, oldest first (an immutable copy)."""
        series = self._candles.get(symbol)
        return series.items() if series is not None else ()

    def _series(self, symbol: str) -> CandleSeries:
        series = self._candles.get(symbol)
        if series is None:
            series = self._candles[symbol] = CandleSeries(symbol, self._max_candles)
        return series

    # --- stream status ---------------------------------------------------------------

    async def set_stream_status(self, name: str, status: Mapping[str, StatusValue]) -> None:
        """Publish a task's liveness view (connected since, reconnects, ...) for /state and /health."""
        async with self._lock:
            self._streams[name] = dict(status)
            self._version += 1

    # --- reading ---------------------------------------------------------------------

    def snapshot(self) -> StateSnapshot:
        """A consistent frozen copy.

        Safe without the lock: writers apply each change without yielding to the loop,
        and this copy is taken without yielding either.
        """
        return StateSnapshot(
            positions=MappingProxyType(dict(self._positions)),
            open_orders=MappingProxyType(dict(self._orders)),
            balances=MappingProxyType(dict(self._balances)),
            candles=MappingProxyType({s: _summary(c) for s, c in self._candles.items()}),
            streams=MappingProxyType({n: MappingProxyType(dict(v)) for n, v in self._streams.items()}),
            version=self._version,
        )


def _summary(series: CandleSeries) -> CandleSummary:
    """Count, span and the holes that still overlap the stored window."""
    first = series.first_open_ms
    holes = tuple(Hole(a, b) for a, b in series.holes if first is not None and b >= first)
    return CandleSummary(len(series), first, series.last_open_ms, holes)


def snapshot_to_builtins(snapshot: StateSnapshot) -> dict[str, Any]:
    """JSON-ready form (Decimals as strings) for the ops endpoint."""
    return {
        "positions": [msgspec.to_builtins(p) for p in snapshot.positions.values()],
        "open_orders": [msgspec.to_builtins(o) for o in snapshot.open_orders.values()],
        "balances": [msgspec.to_builtins(b) for b in snapshot.balances.values()],
        "candles": {s: msgspec.to_builtins(c) for s, c in snapshot.candles.items()},
        "streams": {n: dict(v) for n, v in snapshot.streams.items()},
        "version": snapshot.version,
    }
