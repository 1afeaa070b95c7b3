"""An order refused twice for its timestamp (-1021) is sent again, not left in flight (found by the soak).

The transport resyncs the server clock and resends a -1021 once; when the resend is refused too (an
accelerated or jumping clock, a loaded machine), the ClockSkew error escaped the order manager:
the intent stayed in the journal with no outcome until the next restart, and the caller (the
protective-order keeper) logged a traceback. -1021 is answered before execution, so the order
manager now sends the same client id again with backoff, as for any request that was not executed.
"""

from __future__ import annotations

from pathlib import Path

from aegis.domain import Side
from aegis.trading.intents import Outcome
from tests.harness import DEMO_API_KEY
from tests.trading_rig import settled, trading_rig

AHEAD = "Timestamp for this request was 1000ms ahead of the server's time."


async def test_an_order_refused_for_its_timestamp_twice_is_sent_again_and_placed_once(tmp_path: Path) -> None:
    async with trading_rig(tmp_path) as rig:
        await rig.account.admin.inject(
            "fail_requests", path="/fapi/v1/order", method="POST", count=2, status=400, code=-1021, msg=AHEAD
        )
        sub = await rig.market(Side.BUY, "0.002", "skewed")
        assert sub.outcome is Outcome.PLACED, sub.reason
        await settled(rig)
        orders = rig.account.sim.sim.exchange.accounts[DEMO_API_KEY].orders.values()
        assert [o.client_order_id for o in orders] == [sub.client_id]
        assert await rig.journal.in_flight() == []
        assert rig.trader.orders.retries == 1
