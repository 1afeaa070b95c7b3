"""The engine's one in-memory state store: account and candles, written through one set of rules.

Writers (the user stream's event applier, the order manager, the reconciler, the market feed)
change it only through the async methods below; each applies the rules of ``aegis.state.rules``
(forward-only orders, fills once, freshness per item, the as-of fence of snapshots) and its whole
change without yielding, so a reader never sees half an update. Readers look one item up
(``order``, ``position``...) without copying anything, or take a ``snapshot()``: frozen copies
that do not change under them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import msgspec
from loguru import logger

from aegis.domain import AlgoOrder, Balance, Candle, Fill, Order, Position
from aegis.market.series import CandleSeries
from aegis.state.rules import Freshness, RecentMap, supersedes

__all__ = [
    "OPEN_ALGO_STATUSES",
    "AccountSnapshot",
    "CandleSummary",
    "Hole",
    "StateSnapshot",
    "StateStore",
    "StatusValue",
    "algo_key",
    "balance_key",
    "order_key",
    "position_key",
    "snapshot_to_builtins",
]

StatusValue = str | int | float | bool | None
OPEN_ALGO_STATUSES = frozenset({"NEW", "TRIGGERING"})
_ALGO_RANK = {"NEW": 0, "TRIGGERING": 1, "TRIGGERED": 2}  # anything else is final (3)

OrderListener = Callable[[Order], None]
FillListener = Callable[[Fill], None]


def position_key(symbol: str, side: str = "BOTH") -> tuple[str, str, str]:
    return ("P", symbol, side)


def balance_key(asset: str) -> tuple[str, str]:
    return ("B", asset)


def order_key(client_order_id: str) -> tuple[str, str]:
    return ("O", client_order_id)


def algo_key(client_algo_id: str) -> tuple[str, str]:
    return ("A", client_algo_id)


class Hole(msgspec.Struct, frozen=True):
    """A range of candle open times the exchange itself could not fill (never papered over)."""

    first_open_ms: int
    last_open_ms: int


class CandleSummary(msgspec.Struct, frozen=True):
    count: int
    first_open_ms: int | None
    last_open_ms: int | None
    holes: tuple[Hole, ...]


class AccountSnapshot(msgspec.Struct, frozen=True):
    """The exchange's account as REST reported it, at least as new as exchange time ``as_of_ms``
    (taken before the first request, so everything up to it is in the answers)."""

    as_of_ms: int
    positions: tuple[Position, ...]
    open_orders: tuple[Order, ...]
    open_algo_orders: tuple[AlgoOrder, ...]
    balances: tuple[Balance, ...]


class StateSnapshot(msgspec.Struct, frozen=True):
    """A consistent view of the store at one instant."""

    positions: Mapping[str, Position]
    open_orders: Mapping[str, Order]
    open_algo_orders: Mapping[str, AlgoOrder]
    balances: Mapping[str, Balance]
    candles: Mapping[str, CandleSummary]
    streams: Mapping[str, Mapping[str, StatusValue]]
    version: int


def _algo_progress(algo: AlgoOrder) -> tuple[int, int]:
    return (_ALGO_RANK.get(algo.status, 3), algo.update_time_ms)


# How long closed orders, fills and per-key write times are remembered (exchange time): far past
# any late or repeated event (a stream rotation's overlap is seconds, a snapshot's age minutes, a
# connection lives 24 h), so a quiet engine's memory stops growing after a day.
MEMORY_MS = 86_400_000


class StateStore:
    def __init__(
        self, max_candles: int = 5000, *, memory: int = 20_000, memory_ms: int = MEMORY_MS, recent_fills: int = 1000
    ) -> None:
        """``memory``: orders and trades remembered after they close, so that a late or repeated
        event about them is recognised (must outlast the exchange's event delays); at most that
        many, and none last written more than ``memory_ms`` of exchange time ago (open orders stay)."""
        if max_candles < 1:
            raise ValueError("max_candles must be >= 1")
        self._lock = asyncio.Lock()
        self._max_candles = max_candles
        self._fresh = Freshness(2 * memory + 1_000, memory_ms)  # order and algo keys, positions, balances
        self._positions: dict[tuple[str, str], Position] = {}
        self._open: dict[str, Order] = {}  # open orders by client order id
        # every order by (symbol, id)
        self._orders: RecentMap[tuple[str, int], Order] = RecentMap(memory, memory_ms, self._is_open)
        self._by_client: RecentMap[str, tuple[str, int]] = RecentMap(memory, memory_ms)
        self._snapshot_open: frozenset[tuple[str, int]] = frozenset()
        self._algos: dict[str, AlgoOrder] = {}  # open algo orders by client algo id
        self._algo_memory: RecentMap[str, AlgoOrder] = RecentMap(memory, memory_ms)
        self._fills: RecentMap[tuple[str, int, int], Fill] = RecentMap(memory, memory_ms)
        self._recent_fills: deque[Fill] = deque(maxlen=recent_fills)
        self._balances: dict[str, Balance] = {}
        self._leverage: dict[str, int] = {}
        self._candles: dict[str, CandleSeries] = {}
        self._streams: dict[str, dict[str, StatusValue]] = {}
        self._version = 0
        self._order_listeners: list[OrderListener] = []
        self._fill_listeners: list[FillListener] = []

    def _is_open(self, order: Order) -> bool:
        """Still in the open-order book: never forgotten, however old."""
        return self._open.get(order.client_order_id) is order

    # --- listeners -----------------------------------------------------------------------

    def on_order(self, listener: OrderListener) -> None:
        """Called after every order state that was written (from any writer)."""
        self._order_listeners.append(listener)

    def on_fill(self, listener: FillListener) -> None:
        """Called once per new fill, and once more when its fee-bearing copy refines a first copy
        that had none (TRADE_LITE); never for a plain repeat of the same trade."""
        self._fill_listeners.append(listener)

    # --- reading one thing (no copies) -----------------------------------------------------

    def order(self, client_order_id: str) -> Order | None:
        """The newest order that carries this client id, open or closed (if still remembered)."""
        found = self._open.get(client_order_id)
        if found is not None:
            return found
        key = self._by_client.get(client_order_id)
        return None if key is None else self._orders.get(key)

    def order_by_id(self, symbol: str, order_id: int) -> Order | None:
        return self._orders.get((symbol, order_id))

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self._open.values() if symbol is None or o.symbol == symbol]

    def algo_order(self, client_algo_id: str) -> AlgoOrder | None:
        return self._algos.get(client_algo_id) or self._algo_memory.get(client_algo_id)

    def open_algo_orders(self, symbol: str | None = None) -> list[AlgoOrder]:
        return [a for a in self._algos.values() if symbol is None or a.symbol == symbol]

    def position(self, symbol: str, side: str = "BOTH") -> Position | None:
        return self._positions.get((symbol, side))

    def positions(self) -> list[Position]:
        return list(self._positions.values())

    def balance(self, asset: str) -> Balance | None:
        return self._balances.get(asset)

    def balances(self) -> list[Balance]:
        return list(self._balances.values())

    def fill(self, symbol: str, order_id: int, trade_id: int) -> Fill | None:
        return self._fills.get((symbol, order_id, trade_id))

    def recent_fills(self) -> list[Fill]:
        """The most recent fills, oldest first (the fee-bearing copy once ORDER_TRADE_UPDATE came)."""
        return list(self._recent_fills)

    def leverage(self, symbol: str) -> int | None:
        return self._leverage.get(symbol)

    def touched_after(self, key: Hashable, as_of_ms: int) -> bool:
        """An event newer than ``as_of_ms`` changed this item: a snapshot as of then may not show it."""
        return self._fresh.touched_after(key, as_of_ms)

    def position_covers(self, symbol: str, at_ms: int, side: str = "BOTH") -> bool:
        """The stored position of ``symbol`` includes every trade up to ``at_ms`` (from the stream or
        an adopted snapshot), e.g. a fill the engine learned of from an order's REST answer."""
        return self._fresh.covers(position_key(symbol, side), at_ms)

    # --- account writes --------------------------------------------------------------------

    async def apply_order(self, order: Order, *, at_ms: int | None = None) -> bool:
        """Write an order state unless it is older than what is known; True if written."""
        async with self._lock:
            written = self._put_order(order, at_ms)
        if written:
            self._notify(self._order_listeners, order)
        return written

    def _put_order(self, order: Order, at_ms: int | None) -> bool:
        key = (order.symbol, order.order_id)
        if (
            order.status.is_open
            and order.update_time_ms <= self._fresh.fence_ms
            and key not in self._snapshot_open
        ):
            return False  # open before the snapshot, and the snapshot says it no longer is
        known = self._orders.get(key)
        if known is None:
            known = self._open.get(order.client_order_id)
            if known is not None and known.order_id != order.order_id:
                known = None  # a reused client order id of an older, different order
        if not supersedes(order, known):
            return False
        stamp = max(order.update_time_ms, at_ms or 0)
        self._orders.put(key, order, stamp)
        self._by_client.put(order.client_order_id, key, stamp)
        if order.status.is_open:
            self._open[order.client_order_id] = order
        elif (current := self._open.get(order.client_order_id)) is not None and current.order_id == order.order_id:
            del self._open[order.client_order_id]
        self._fresh.accept(order_key(order.client_order_id), stamp)
        self._version += 1
        return True

    async def record_fill(self, fill: Fill) -> bool:
        """Remember a fill; True if this trade is new. A fee-bearing repeat refines the stored copy
        (fill listeners hear of it too: the first copy, from TRADE_LITE, has no fee and no PnL)."""
        key = (fill.symbol, fill.order_id, fill.trade_id)
        async with self._lock:
            known = self._fills.get(key)
            if known is None:
                self._recent_fills.append(fill)
                self._version += 1
            elif known.commission_asset or not fill.commission_asset:
                return False  # nothing new about this trade
            else:
                self._recent_fills = deque(
                    (fill if item is known else item for item in self._recent_fills), maxlen=self._recent_fills.maxlen
                )
            self._fills.put(key, fill, fill.time_ms)
        self._notify(self._fill_listeners, fill)
        return known is None

    async def apply_account(
        self, balances: Iterable[Balance] = (), positions: Iterable[Position] = (), *, at_ms: int
    ) -> bool:
        """Apply changed balances and positions stamped ``at_ms`` (one ACCOUNT_UPDATE is one change);
        each item only if it is at least as new as what the store holds. True if any was written."""
        written = False
        async with self._lock:
            for balance in balances:
                if self._fresh.accept(balance_key(balance.asset), at_ms):
                    self._balances[balance.asset] = balance
                    written = True
            for position in positions:
                if self._fresh.accept(position_key(position.symbol, position.position_side), at_ms):
                    self._put_position(position)
                    written = True
            if written:
                self._version += 1
        return written

    async def apply_algo(self, algo: AlgoOrder, *, at_ms: int | None = None) -> bool:
        """Write a conditional order's state, forward only (NEW < TRIGGERING < TRIGGERED < final)."""
        async with self._lock:
            known = self._algos.get(algo.client_algo_id) or self._algo_memory.get(algo.client_algo_id)
            if known is not None and known.algo_id == algo.algo_id and _algo_progress(algo) <= _algo_progress(known):
                return False
            self._algo_memory.put(algo.client_algo_id, algo, max(algo.update_time_ms, at_ms or 0))
            if algo.status in OPEN_ALGO_STATUSES:
                self._algos[algo.client_algo_id] = algo
            else:
                self._algos.pop(algo.client_algo_id, None)
            self._fresh.accept(algo_key(algo.client_algo_id), max(algo.update_time_ms, at_ms or 0))
            self._version += 1
            return True

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        async with self._lock:
            self._leverage[symbol] = leverage
            self._version += 1

    async def adopt_snapshot(self, snapshot: AccountSnapshot, only: frozenset[str] | None = None) -> None:
        """Take the exchange's account where no event newer than ``snapshot.as_of_ms`` has
        changed it, and fence every event stamped at or before that time out from now on.

        ``only`` limits the adoption to some of "position", "balance", "order", "algo_order" (a
        reconciliation policy may only log a class of mismatch)."""
        as_of = snapshot.as_of_ms
        kinds = only if only is not None else frozenset({"position", "balance", "order", "algo_order"})
        async with self._lock:
            if "position" in kinds:
                self._adopt_positions(snapshot.positions, as_of)
            if "balance" in kinds:
                self._adopt_balances(snapshot.balances, as_of)
            if "order" in kinds:
                self._adopt_orders(snapshot.open_orders, as_of)
            if "algo_order" in kinds:
                self._adopt_algos(snapshot.open_algo_orders, as_of)
            if kinds == {"position", "balance", "order", "algo_order"}:
                self._fresh.fence(as_of)
            self._version += 1

    def _adopt_positions(self, positions: Iterable[Position], as_of: int) -> None:
        truth = {(p.symbol, p.position_side): p for p in positions}
        for key in set(self._positions) | set(truth):
            fkey = position_key(*key)
            if self._fresh.touched_after(fkey, as_of):
                continue
            position = truth.get(key)
            if position is None or position.is_flat:
                self._positions.pop(key, None)
            else:
                self._positions[key] = position
            self._fresh.adopted(fkey, as_of)

    def _adopt_balances(self, balances: Iterable[Balance], as_of: int) -> None:
        truth = {b.asset: b for b in balances}
        for asset in set(self._balances) | set(truth):
            if self._fresh.touched_after(balance_key(asset), as_of):
                continue
            balance = truth.get(asset)
            if balance is None:
                self._balances.pop(asset, None)
            else:
                self._balances[asset] = balance
            self._fresh.adopted(balance_key(asset), as_of)

    def _adopt_orders(self, orders: Iterable[Order], as_of: int) -> None:
        truth = {o.client_order_id: o for o in orders if o.status.is_open}
        for cid in list(self._open):
            if cid not in truth and not self._fresh.touched_after(order_key(cid), as_of):
                del self._open[cid]  # closed on the exchange without the stream telling us
                self._fresh.adopted(order_key(cid), as_of)
        for cid, order in truth.items():
            if self._fresh.touched_after(order_key(cid), as_of):
                continue
            key = (order.symbol, order.order_id)
            known = self._orders.get(key)
            chosen = order if supersedes(order, known) or known is None else known
            if not chosen.status.is_open:
                continue  # we saw it close: an open row of an older moment cannot reopen it
            self._orders.put(key, chosen, as_of)
            self._by_client.put(cid, key, as_of)
            self._open[cid] = chosen
            self._fresh.adopted(order_key(cid), as_of)
        self._snapshot_open = frozenset((o.symbol, o.order_id) for o in truth.values())

    def _adopt_algos(self, algos: Iterable[AlgoOrder], as_of: int) -> None:
        truth = {a.client_algo_id: a for a in algos if a.status in OPEN_ALGO_STATUSES}
        for cid in list(self._algos):
            if cid not in truth and not self._fresh.touched_after(algo_key(cid), as_of):
                del self._algos[cid]
                self._fresh.adopted(algo_key(cid), as_of)
        for cid, algo in truth.items():
            if not self._fresh.touched_after(algo_key(cid), as_of):
                self._algos[cid] = algo
                self._algo_memory.put(cid, algo, as_of)
                self._fresh.adopted(algo_key(cid), as_of)

    def _put_position(self, position: Position) -> None:
        key = (position.symbol, position.position_side)
        if position.is_flat:
            self._positions.pop(key, None)
        else:
            self._positions[key] = position

    @staticmethod
    def _notify(listeners: list[Callable[[Any], None]], value: Any) -> None:
        for listener in listeners:
            try:
                listener(value)
            except Exception as exc:  # a listener's bug must not stop the state from being written
                logger.opt(exception=exc).error("state listener {!r} failed", listener)

    # --- candles ---------------------------------------------------------------------

    async def add_candles(self, symbol: str, candles: Iterable[Candle]) -> int:
        """Append closed candles in open-time order; returns how many were new."""
        async with self._lock:
            return self._append(symbol, candles)

    def add_candles_now(self, symbol: str, candles: Iterable[Candle]) -> int | None:
        """The same without waiting: None (nothing written) while a writer holds the lock."""
        return None if self._lock.locked() else self._append(symbol, candles)

    def _append(self, symbol: str, candles: Iterable[Candle]) -> int:
        series = self._series(symbol)
        added = sum(1 for candle in candles if series.append(candle))
        self._version += 1 if added else 0
        return added

    async def record_hole(self, symbol: str, first_open_ms: int, last_open_ms: int) -> None:
        async with self._lock:
            self._series(symbol).holes.append((first_open_ms, last_open_ms))
            self._version += 1

    def candles(self, symbol: str) -> tuple[Candle, ...]:
        """The stored closed candles of ``symbol``, oldest first (an immutable copy)."""
        series = self._candles.get(symbol)
        return series.items() if series is not None else ()

    def tail(self, symbol: str, count: int) -> tuple[Candle, ...]:
        """The newest ``count`` stored closed candles of ``symbol``, oldest first."""
        series = self._candles.get(symbol)
        return series.tail(count) if series is not None else ()

    def series(self, symbol: str) -> CandleSeries | None:
        """The live candle series of ``symbol`` (read-only use: indicators read it in place)."""
        return self._candles.get(symbol)

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

    # --- snapshots ---------------------------------------------------------------------

    def snapshot(self) -> StateSnapshot:
        """A consistent frozen copy (safe without the lock: writers never yield mid-change)."""
        return StateSnapshot(
            positions=MappingProxyType({p.symbol if side == "BOTH" else f"{p.symbol}:{side}": p
                                        for (_, side), p in self._positions.items()}),
            open_orders=MappingProxyType(dict(self._open)),
            open_algo_orders=MappingProxyType(dict(self._algos)),
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
        "open_algo_orders": [msgspec.to_builtins(a) for a in snapshot.open_algo_orders.values()],
        "balances": [msgspec.to_builtins(b) for b in snapshot.balances.values()],
        "candles": {s: msgspec.to_builtins(c) for s, c in snapshot.candles.items()},
        "streams": {n: dict(v) for n, v in snapshot.streams.items()},
        "version": snapshot.version,
    }
