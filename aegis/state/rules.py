"""The rules every write to the account state obeys, whoever writes (stream, order manager, reconciler).

Events reach the engine twice (a rotation overlap), out of order (TRADE_LITE before the order's
NEW), late relative to REST answers, and REST snapshots are older than the events that arrive
while they are in flight. These rules make every write idempotent and forward-only:

* an order only moves forward: terminal beats open, more filled beats less, a higher status
  beats a lower one, a later update beats an earlier one; so a late NEW never reopens a FILLED
  order and a REST acknowledgement is never undone by a stale stream event;
* a fill counts once per (symbol, order id, trade id), whichever message brought it;
* a balance or position is replaced only by a value at least as new as the one it holds;
* a snapshot taken "as of" exchange time T replaces only what no event after T has touched,
  and fences every event stamped T or earlier out afterwards (the snapshot already holds it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from decimal import Decimal
from typing import Generic, TypeVar

from aegis.domain import Order, OrderStatus

__all__ = ["Freshness", "OrderProgress", "RecentMap", "order_progress", "supersedes"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

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
    return old is None or order_progress(new) > order_progress(old)


class RecentMap(Generic[K, V]):
    """A dict that forgets the least recently written key beyond ``capacity``, and with a
    ``horizon_ms`` also every key last written longer ago than that (exchange time; ``keep``
    exempts values that must stay, e.g. open orders): bounded memory whatever the run's length."""

    def __init__(
        self, capacity: int, horizon_ms: int | None = None, keep: Callable[[V], bool] | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._horizon = horizon_ms
        self._keep = keep
        self._now = 0  # newest write time seen
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        return None if found is None else found[0]

    def put(self, key: K, value: V, at_ms: int = 0) -> None:
        items = self._items
        items[key] = (value, at_ms)
        items.move_to_end(key)
        if len(items) > self._capacity:
            items.popitem(last=False)
        if self._horizon is not None and at_ms > self._now:
            self._now = at_ms
            self._expire(at_ms - self._horizon)

    def _expire(self, before_ms: int) -> None:
        items = self._items
        while items:
            key, (value, stamp) = next(iter(items.items()))
            if stamp >= before_ms:
                return
            if self._keep is not None and self._keep(value):
                items[key] = (value, self._now)  # still needed: checked again a horizon from now
                items.move_to_end(key)
            else:
                del items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


class Freshness:
    """Exchange time of the last write per key, and the fence of the last adopted snapshot.

    Every order and algo order adds a key, so the record forgets the least recently written keys
    beyond ``capacity``, and keys not written for ``horizon_ms`` of exchange time (no event comes
    that late): a forgotten key reads as never written."""

    def __init__(self, capacity: int = 100_000, horizon_ms: int | None = None) -> None:
        self._touched: RecentMap[Hashable, int] = RecentMap(capacity, horizon_ms)  # key -> last write
        self.fence_ms = 0  # as-of time of the last adopted snapshot

    def __len__(self) -> int:
        return len(self._touched)

    def _write(self, key: Hashable, at_ms: int) -> None:
        self._touched.put(key, at_ms, at_ms)

    def accept(self, key: Hashable, at_ms: int) -> bool:
        """Whether a value stamped ``at_ms`` may replace the key's current one (and record it)."""
        if at_ms <= self.fence_ms:
            return False  # the adopted snapshot already holds this and anything before it
        last = self._touched.get(key)
        if last is not None and at_ms < last:
            return False
        self._write(key, at_ms)
        return True

    def touched_after(self, key: Hashable, as_of_ms: int) -> bool:
        """An event newer than ``as_of_ms`` wrote this key: a snapshot as of then must not undo it."""
        last = self._touched.get(key)
        return last is not None and last > as_of_ms

    def covers(self, key: Hashable, at_ms: int) -> bool:
        """The key's value includes everything up to ``at_ms``: an event that late wrote it, or a
        snapshot as of then or later was adopted."""
        last = self._touched.get(key)
        return (last is not None and last >= at_ms) or self.fence_ms >= at_ms

    def adopted(self, key: Hashable, as_of_ms: int) -> None:
        self._write(key, as_of_ms)

    def fence(self, as_of_ms: int) -> None:
        self.fence_ms = max(self.fence_ms, as_of_ms)
