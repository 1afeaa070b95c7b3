"""A fill for an order the engine does not know asks for a reconciliation at once (issue 14's trigger).

The order's own events (ORDER_TRADE_UPDATE, ACCOUNT_UPDATE) are lost while its TRADE_LITE arrives:
the engine learns that something filled, not what its position now is. After a short grace (the
NEW of an order may follow its first fill by a moment), a pass is asked for and finds the position.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from aegis.account.stream import UNKNOWN_FILL_GRACE_S
from aegis.reconcile.diff import Kind
from aegis.reconcile.report import Report
from tests.harness import until
from tests.rigs import account_rig

ORDER_EVENTS = ["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"]


async def test_a_fill_of_an_unknown_order_is_reconciled_within_the_grace_and_a_recheck() -> None:
    async with account_rig() as rig:
        reconciler = rig.reconciler
        assert reconciler is not None
        reports: list[Report] = []
        reconciler.watch(reports.append)
        await rig.admin.inject("pause_user", count=3, events=ORDER_EVENTS)
        order_id = await rig.trade("BUY", "0.002")
        asked = await until(lambda: any("does not know" in r.reason for r in rig.requests.history), 10.0, "the request")
        assert asked <= UNKNOWN_FILL_GRACE_S + 0.1
        assert any(str(order_id) in r.reason for r in rig.requests.history)
        took = await until(lambda: any(f.kind is Kind.POSITION for r in reports for f in r.findings), 10.0, "the finding")
        # Issue 14: reported within 2 exchange seconds of the divergence (grace + re-check, virtual time).
        assert asked + took < 2.0
        assert rig.store_position() == Decimal("0.002")


async def test_a_fill_whose_order_events_follow_asks_for_nothing() -> None:
    async with account_rig() as rig:
        before = rig.requests.total
        await rig.trade_seen("BUY", "0.002")
        await asyncio.sleep(UNKNOWN_FILL_GRACE_S * 2)
        assert rig.requests.total == before
