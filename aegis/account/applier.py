"""Applying user data stream events to the state store: exactly once, never backwards.

Events reach us twice during a rotation (old and new connection overlap), out of order on
the real exchange (TRADE_LITE before the order's NEW), and late relative to REST answers.
The rules here make applying them idempotent:

* an identical event seen again is a duplicate (bounded memory of recent events);
* an order update is applied only if it moves the order forward: terminal beats open,
  more filled beats less, a higher status beats a lower one, a later update time beats an
  earlier one -- so a late NEW after FILLED never reopens an order;
* a fill is counted once per (symbol, order id, trade id), whether it came as TRADE_LITE or
  ORDER_TRADE_UPDATE (the latter, carrying the fee, refines the stored copy);
* a balance or position older than the one last applied is skipped.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Generic, TypeVar

from loguru import logger

from aegis.domain import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoUpdate,
    Fill,
    ListenKeyExpired,
    MarginCall,
    Order,
    OrderStatus,
    OrderUpdate,
    Position,
    TradeLite,
    UserEvent,
)
from aegis.state.store import StateStore

__all__ = [
    "ApplierCounters",
    "OrderProgress",
    "Outcome",
    "RecentSet",
    "UserEventApplier",
    "order_progress",
    "supersedes",
]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    IGNORED = "ignored"


class RecentSet(Generic[K]):
    """A set that forgets its oldest members beyond ``capacity`` (dedup without unbounded memory)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._items: OrderedDict[K, None] = OrderedDict()

    def add(self, key: K) -> bool:
        """True if ``key`` is new (and now remembered), False if it was seen recently."""
        if key in self._items:
            return False
        self._items[key] = None
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


class _BoundedMap(Generic[K, V]):
    """A dict that evicts the least recently written key beyond ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def values(self) -> list[V]:
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)


# --- order monotonicity --------------------------------------------------------------------

_STATUS_RANK = {
    OrderStatus.NEW: 0,
    OrderStatus.PARTIALLY_FILLED: 1,
    OrderStatus.FILLED: 2,
    OrderStatus.CANCELED: 2,
    OrderStatus.EXPIRED: 2,
    OrderStatus.EXPIRED_IN_MATCH: 2,
    OrderStatus.REJECTED: 2,
}

OrderProgress = tuple[bool, Decimal, int, int]


def order_progress(order: Order) -> OrderProgress:
    """How far an order has come: (closed, filled quantity, status rank, update time).

    Compared lexicographically: once closed, nothing earlier can reopen it; among open states
    more fill wins, then a higher status, then the later update (an amendment).
    """
    return (not order.status.is_open, order.executed_qty, _STATUS_RANK[order.status], order.update_time_ms)


def supersedes(new: Order, old: Order | None) -> bool:
    """True if ``new`` is a later state of the order than ``old`` (anything beats nothing)."""
    if old is None:
        return True
    return order_progress(new) > order_progress(old)


# --- the applier ---------------------------------------------------------------------------

FillKey = tuple[str, int, int]
OrderKey = tuple[str, int]
EventListener = Callable[[UserEvent], None]
FillListener = Callable[[Fill], None]


@dataclass
class ApplierCounters:
    """What /state and tests read: how many events were applied, skipped, and why."""

    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    ignored: int = 0
    fills: int = 0
    margin_calls: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


class UserEventApplier:
    """Turns parsed user events into StateStore writes, idempotently (see the module docstring)."""

    def __init__(
        self,
        state: StateStore,
        *,
        recent_events: int = 5_000,
        memory: int = 20_000,
        recent_fills: int = 1000,
    ) -> None:
        """``recent_events`` must cover a rotation overlap (seconds of traffic); ``memory`` (orders
        and trades remembered) must outlast any late or repeated event about them."""
        self._state = state
        self._seen: RecentSet[UserEvent] = RecentSet(recent_events)
        self._orders: _BoundedMap[OrderKey, Order] = _BoundedMap(memory)
        self._fills: _BoundedMap[FillKey, Fill] = _BoundedMap(memory)
        self._recent_fills: deque[Fill] = deque(maxlen=recent_fills)
        self._account_times: dict[tuple[str, ...], int] = {}
        self._snapshot_ms = 0  # exchange time of the last adopted REST snapshot
        self._snapshot_open: frozenset[OrderKey] = frozenset()
        self._algo: dict[int, AlgoUpdate] = {}
        self.leverage: dict[str, int] = {}
        self.multi_assets: bool | None = None
        self.counters = ApplierCounters()
        self._event_listeners: list[EventListener] = []
        self._fill_listeners: list[FillListener] = []

    # --- hooks --------------------------------------------------------------------------

    def on_event(self, listener: EventListener) -> None:
        """Called with every event that changed something (after the store was written)."""
        self._event_listeners.append(listener)

    def on_fill(self, listener: FillListener) -> None:
        """Called once per new fill (e.g. for the journal); never for a repeat of the same trade."""
        self._fill_listeners.append(listener)

    # --- reading ------------------------------------------------------------------------

    def fills(self) -> list[Fill]:
        """The most recent fills, oldest first (fee-bearing copy when ORDER_TRADE_UPDATE came)."""
        return list(self._recent_fills)

    def fill(self, symbol: str, order_id: int, trade_id: int) -> Fill | None:
        return self._fills.get((symbol, order_id, trade_id))

    def order(self, symbol: str, order_id: int) -> Order | None:
        """The latest state of an order this stream has seen, open or closed."""
        return self._orders.get((symbol, order_id))

    def open_algo_orders(self) -> list[AlgoUpdate]:
        return list(self._algo.values())

    # --- writing ------------------------------------------------------------------------

    async def apply(self, event: UserEvent) -> Outcome:
        """Apply one event; returns what happened to it. Never raises for a well-typed event."""
        name = type(event).__name__
        if not self._seen.add(event):
            self.counters.duplicates += 1
            return Outcome.DUPLICATE
        outcome = await self._dispatch(event)
        if outcome is Outcome.APPLIED:
            self.counters.applied += 1
            self.counters.by_type[name] = self.counters.by_type.get(name, 0) + 1
            for listener in self._event_listeners:
                _call(listener, event)
        elif outcome is Outcome.STALE:
            self.counters.stale += 1
        elif outcome is Outcome.DUPLICATE:
            self.counters.duplicates += 1
        else:
            self.counters.ignored += 1
        return outcome

    async def apply_order(self, order: Order) -> bool:
        """Write an order state unless it is older than what we already know; True if written.

        Public so that other writers (order acks from REST) can share the same guard.
        """
        key = (order.symbol, order.order_id)
        if (
            order.status.is_open
            and order.update_time_ms <= self._snapshot_ms
            and key not in self._snapshot_open
        ):
            return False  # open before the snapshot, and the snapshot says it no longer is
        known = self._orders.get(key)
        if known is None:
            known = self._state.snapshot().open_orders.get(order.client_order_id)
            if known is not None and known.order_id != order.order_id:
                known = None  # a reused client order id of an older, different order
        if not supersedes(order, known):
            return False
        self._orders.put(key, order)
        await self._state.apply_order(order)
        return True

    def adopt_snapshot(self, as_of_ms: int, orders: Iterable[Order]) -> None:
        """Learn a REST snapshot the store was just replaced with (the reconciler's verdict).

        ``as_of_ms`` is exchange time taken *before* the snapshot was requested, so everything
        that happened up to then is in it: a queued or late event from then or earlier must
        not undo it (no reopened order, no older position or balance); later events apply.
        ``orders`` are the open orders of the snapshot.
        """
        open_keys = []
        for order in orders:
            key = (order.symbol, order.order_id)
            open_keys.append(key)
            known = self._orders.get(key)
            if supersedes(order, known):
                self._orders.put(key, order)
        self._snapshot_ms = as_of_ms
        self._snapshot_open = frozenset(open_keys)

    async def _dispatch(self, event: UserEvent) -> Outcome:
        if isinstance(event, OrderUpdate):
            return await self._order_update(event)
        if isinstance(event, TradeLite):
            return Outcome.APPLIED if self._record_fill(event.fill) else Outcome.DUPLICATE
        if isinstance(event, AccountUpdate):
            return await self._account_update(event)
        if isinstance(event, AlgoUpdate):
            return self._algo_update(event)
        if isinstance(event, MarginCall):
            return self._margin_call(event)
        if isinstance(event, AccountConfigUpdate):
            return self._config_update(event)
        if isinstance(event, ListenKeyExpired):
            return Outcome.IGNORED  # lifecycle, handled by the stream itself
        return Outcome.IGNORED  # pragma: no cover - UserEvent is exhaustive

    async def _order_update(self, event: OrderUpdate) -> Outcome:
        new_fill = event.fill is not None and self._record_fill(event.fill)
        written = await self.apply_order(event.order)
        if written or new_fill:
            return Outcome.APPLIED
        return Outcome.STALE

    def _record_fill(self, fill: Fill) -> bool:
        """Remember a fill; True if this trade is new. A fee-bearing repeat refines the stored copy."""
        key = (fill.symbol, fill.order_id, fill.trade_id)
        known = self._fills.get(key)
        if known is not None:
            if not known.commission_asset and fill.commission_asset:
                self._fills.put(key, fill)
                _replace_in(self._recent_fills, known, fill)
            return False
        self._fills.put(key, fill)
        self._recent_fills.append(fill)
        self.counters.fills += 1
        for listener in self._fill_listeners:
            _call(listener, fill)
        return True

    async def _account_update(self, event: AccountUpdate) -> Outcome:
        balances = [b for b in event.balances if self._fresh(("B", b.asset), event.transaction_time_ms)]
        positions = [p for p in event.positions if self._fresh(_position_key(p), event.transaction_time_ms)]
        if not balances and not positions:
            return Outcome.STALE if (event.balances or event.positions) else Outcome.IGNORED
        await self._state.apply_account(balances, positions)
        return Outcome.APPLIED

    def _fresh(self, key: tuple[str, ...], time_ms: int) -> bool:
        if time_ms <= self._snapshot_ms:
            return False  # already in the adopted snapshot, together with anything later
        last = self._account_times.get(key)
        if last is not None and time_ms < last:
            return False
        self._account_times[key] = time_ms
        return True

    def _algo_update(self, event: AlgoUpdate) -> Outcome:
        if event.status in ("NEW", "TRIGGERING"):
            self._algo[event.algo_id] = event
        else:
            self._algo.pop(event.algo_id, None)
        logger.info(
            "algo order {} {} {} {} trigger {} -> {}",
            event.client_algo_id,
            event.symbol,
            event.side,
            event.type,
            event.trigger_price,
            event.status,
        )
        return Outcome.APPLIED

    def _margin_call(self, event: MarginCall) -> Outcome:
        self.counters.margin_calls += 1
        legs = ", ".join(f"{p.symbol} {p.position_side} {p.amount}" for p in event.positions)
        logger.warning(
            "MARGIN CALL (cross wallet {}): {}", event.cross_wallet_balance, legs or "no positions"
        )
        return Outcome.APPLIED

    def _config_update(self, event: AccountConfigUpdate) -> Outcome:
        if event.symbol is not None and event.leverage is not None:
            self.leverage[event.symbol] = event.leverage
            logger.info("leverage of {} is now {}x", event.symbol, event.leverage)
        if event.multi_assets is not None:
            self.multi_assets = event.multi_assets
            logger.info("multi-assets mode is now {}", "on" if event.multi_assets else "off")
        return Outcome.APPLIED


def _position_key(position: Position) -> tuple[str, ...]:
    return ("P", position.symbol, position.position_side)


def _replace_in(fills: deque[Fill], old: Fill, new: Fill) -> None:
    for i, item in enumerate(fills):
        if item is old:
            fills[i] = new
            return


def _call(listener: Callable[[V], None], value: V) -> None:
    """A listener's failure is logged; it must not stop events from being applied."""
    try:
        listener(value)
    except Exception as exc:
        logger.opt(exception=exc).error("user event listener {!r} failed", listener)
