"""The exchange forgets old orders as Binance does, so a long run's memory does not grow with them."""

from __future__ import annotations

from decimal import Decimal

from aegis.sim.accounts import Account, Order
from aegis.sim.config import DEMO_ACCOUNT
from aegis.sim.retention import DAY_MS, Retention, forget_old_orders


def _order(oid: int, status: str, at: int, filled: str = "0") -> Order:
    return Order(
        oid, f"c{oid}", "BTCUSDT", "BUY", "LIMIT", "LIMIT", "GTC", Decimal("0.010"), Decimal("50000"),
        Decimal(0), False, False, at, at, status=status, executed_qty=Decimal(filled),
    )  # fmt: skip


def _account(*orders: Order) -> Account:
    acct = Account.from_spec(DEMO_ACCOUNT)
    for o in orders:
        acct.orders[o.order_id] = o
        acct.client_ids[o.client_order_id] = o.order_id
        if o.status == "NEW":
            acct.open_orders[o.order_id] = o
    return acct


def test_unfilled_cancels_go_after_3_days_everything_closed_after_90() -> None:
    now = 100 * DAY_MS
    acct = _account(
        _order(1, "CANCELED", now - 4 * DAY_MS),  # gone: no fill, older than 3 days
        _order(2, "CANCELED", now - 2 * DAY_MS),  # kept: 2 days
        _order(3, "CANCELED", now - 4 * DAY_MS, filled="0.005"),  # kept: it traded
        _order(4, "FILLED", now - 91 * DAY_MS, filled="0.010"),  # gone: older than 90 days
        _order(5, "NEW", now - 95 * DAY_MS),  # kept: still open
    )
    assert forget_old_orders(acct, now) == 2
    assert sorted(acct.orders) == [2, 3, 5] and sorted(acct.client_ids) == ["c2", "c3", "c5"]


def test_a_long_run_keeps_a_bounded_number_of_orders() -> None:
    acct = _account()
    retention = Retention({"k": acct})
    for minute in range(0, 10 * DAY_MS, 60_000 * 30):  # an unfilled cancel every 30 minutes for 10 days
        o = _order(minute, "CANCELED", minute)
        acct.orders[o.order_id], acct.client_ids[o.client_order_id] = o, o.order_id
        retention.prune_due(minute)
    assert len(acct.orders) <= 3 * 48 + 2 and len(acct.client_ids) == len(acct.orders)
