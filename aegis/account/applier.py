"""Applying user data stream events to the state store, through the store's rules.

The store decides whether a write is new (forward-only orders, fills once, freshness per item,
the snapshot fence); this module only turns each event into those writes, drops exact repeats
(the same frame on two connections during a rotation) and counts what happened, for /state.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from loguru import logger

from aegis.domain import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoOrder,
    AlgoUpdate,
    Fill,
    ListenKeyExpired,
    MarginCall,
    OrderUpdate,
    TradeLite,
    UserEvent,
)
from aegis.state import StateStore

__all__ = ["ApplierCounters", "Outcome", "RecentSet", "UserEventApplier", "algo_of"]

K = TypeVar("K", bound=Hashable)


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


EventListener = Callable[[UserEvent], None]


def algo_of(event: AlgoUpdate) -> AlgoOrder:
    """An ALGO_UPDATE as the conditional order's latest state."""
    return AlgoOrder(
        symbol=event.symbol,
        algo_id=event.algo_id,
        client_algo_id=event.client_algo_id,
        side=event.side,
        type=event.type,
        status=event.status,
        quantity=event.quantity,
        trigger_price=event.trigger_price,
        reduce_only=event.reduce_only,
        close_position=event.close_position,
        update_time_ms=event.event_time_ms,
        triggered_order_id=event.triggered_order_id,
    )


class UserEventApplier:
    """Turns parsed user events into StateStore writes and counts the outcomes."""

    def __init__(self, state: StateStore, *, recent_events: int = 5_000) -> None:
        """``recent_events`` must cover a rotation overlap (seconds of traffic)."""
        self._state = state
        self._seen: RecentSet[UserEvent] = RecentSet(recent_events)
        self.multi_assets: bool | None = None
        self.counters = ApplierCounters()
        self._event_listeners: list[EventListener] = []

    def on_event(self, listener: EventListener) -> None:
        """Called with every event that changed something (after the store was written)."""
        self._event_listeners.append(listener)

    async def apply(self, event: UserEvent) -> Outcome:
        """Apply one event; returns what happened to it. Never raises for a well-typed event."""
        if not self._seen.add(event):
            self.counters.duplicates += 1
            return Outcome.DUPLICATE
        outcome = await self._dispatch(event)
        counters = self.counters
        if outcome is Outcome.APPLIED:
            counters.applied += 1
            name = type(event).__name__
            counters.by_type[name] = counters.by_type.get(name, 0) + 1
            for listener in self._event_listeners:
                try:
                    listener(event)
                except Exception as exc:  # a listener's bug must not stop events from being applied
                    logger.opt(exception=exc).error("user event listener {!r} failed", listener)
        elif outcome is Outcome.STALE:
            counters.stale += 1
        elif outcome is Outcome.DUPLICATE:
            counters.duplicates += 1
        else:
            counters.ignored += 1
        return outcome

    async def _dispatch(self, event: UserEvent) -> Outcome:
        state = self._state
        if isinstance(event, OrderUpdate):
            new_fill = event.fill is not None and await self._fill(event.fill)
            written = await state.apply_order(event.order, at_ms=event.transaction_time_ms)
            return Outcome.APPLIED if written or new_fill else Outcome.STALE
        if isinstance(event, TradeLite):
            return Outcome.APPLIED if await self._fill(event.fill) else Outcome.DUPLICATE
        if isinstance(event, AccountUpdate):
            if not event.balances and not event.positions:
                return Outcome.IGNORED
            written = await state.apply_account(
                event.balances, event.positions, at_ms=event.transaction_time_ms
            )
            return Outcome.APPLIED if written else Outcome.STALE
        if isinstance(event, AlgoUpdate):
            return Outcome.APPLIED if await state.apply_algo(algo_of(event)) else Outcome.STALE
        if isinstance(event, MarginCall):
            self.counters.margin_calls += 1
            legs = ", ".join(f"{p.symbol} {p.position_side} {p.amount}" for p in event.positions)
            logger.warning("MARGIN CALL (cross wallet {}): {}", event.cross_wallet_balance, legs or "no positions")
            return Outcome.APPLIED
        if isinstance(event, AccountConfigUpdate):
            return await self._config(event)
        if isinstance(event, ListenKeyExpired):
            return Outcome.IGNORED  # lifecycle, handled by the stream itself
        return Outcome.IGNORED  # pragma: no cover - UserEvent is exhaustive

    async def _fill(self, fill: Fill) -> bool:
        new = await self._state.record_fill(fill)
        if new:
            self.counters.fills += 1
        return new

    async def _config(self, event: AccountConfigUpdate) -> Outcome:
        if event.symbol is not None and event.leverage is not None:
            await self._state.set_leverage(event.symbol, event.leverage)
            logger.info("leverage of {} is now {}x", event.symbol, event.leverage)
        if event.multi_assets is not None:
            self.multi_assets = event.multi_assets
            logger.info("multi-assets mode is now {}", "on" if event.multi_assets else "off")
        return Outcome.APPLIED
