"""What the exchange forgets, as Binance does, so a long run (a month's backtest, a soak) does not
keep every order it ever took.

[docs: Query Order, All Orders] These orders will not be found: status CANCELED or EXPIRED with
no filled trade and created more than 3 days ago; any order created more than 90 days ago. Such
orders are dropped for good (with their client id, unless a newer order reuses it): a query then
answers -2013 as Binance does. Trades stay (``userTrades`` reaches back 6 months, and a trade whose
order is gone is still listed); algo orders and income rows are kept as before.
"""

from __future__ import annotations

from aegis.sim.accounts import Account, Order

__all__ = ["KEPT_MS", "UNFILLED_KEPT_MS", "Retention", "forget_old_orders"]

DAY_MS = 86_400_000
UNFILLED_KEPT_MS = 3 * DAY_MS
KEPT_MS = 90 * DAY_MS
EVERY_MS = 3_600_000  # pruning is an O(orders) sweep: hourly keeps it off the per-minute path


def _forgotten(order: Order, now: int) -> bool:
    if order.time + KEPT_MS < now:
        return True
    return order.status in ("CANCELED", "EXPIRED") and not order.executed_qty and order.time + UNFILLED_KEPT_MS < now


def forget_old_orders(acct: Account, now: int) -> int:
    """Drop the account's closed orders Binance no longer finds at ``now``; how many were dropped."""
    gone = [oid for oid, o in acct.orders.items() if oid not in acct.open_orders and _forgotten(o, now)]
    for oid in gone:
        order = acct.orders.pop(oid)
        if acct.client_ids.get(order.client_order_id) == oid:
            del acct.client_ids[order.client_order_id]
    return len(gone)


class Retention:
    """Runs ``forget_old_orders`` over every account at most hourly (called on each market step)."""

    def __init__(self, accounts: dict[str, Account]) -> None:
        self._accounts = accounts
        self._next = 0

    def prune_due(self, now: int) -> None:
        if self._next - EVERY_MS <= now < self._next:
            return  # a clock moved back (a jump) prunes at once and starts over
        self._next = now + EVERY_MS
        for acct in self._accounts.values():
            forget_old_orders(acct, now)
