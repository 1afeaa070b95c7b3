"""Events racing reconciliation passes never cause a false mismatch (a property over schedules).

Trades and resting orders happen while passes run on a slow REST path (latency injected), so
snapshots are taken, answered and compared while the user stream delivers what changed: the
store's as-of fence and the pass's second look must tell every one of those apart from a real
divergence. Each example is one schedule on a fresh simulator, on virtual time.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from aegis.domain import OrderRequest, OrderType, Side, TimeInForce
from aegis.reconcile.report import Report
from aegis.virtualtime import VirtualTimeLoop
from tests.rigs import SYMBOL, AccountRig, account_rig

ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(("buy", "sell", "rest", "cancel", "pass")),
        st.integers(min_value=0, max_value=3_000),  # ms of exchange time before the action
    ),
    min_size=4,
    max_size=14,
)


async def _act(rig: AccountRig, action: str, n: int, price: Decimal) -> None:
    if action in ("buy", "sell"):
        await rig.trade(action.upper(), "0.002")
    elif action == "rest":
        await rig.rest.place_order(
            OrderRequest(SYMBOL, Side.BUY, OrderType.LIMIT, Decimal("0.002"), f"race-{n}",
                         price=(price * Decimal("0.9")).quantize(Decimal("0.1")), time_in_force=TimeInForce.GTC)
        )  # fmt: skip
    elif action == "cancel":
        await rig.rest.cancel_all_orders(SYMBOL)


async def _scenario(actions: list[tuple[str, int]], latency_ms: int) -> list[Report]:
    async with account_rig() as rig:
        assert rig.reconciler is not None
        price = rig.sim.sim.market.price(SYMBOL)
        await rig.admin.inject("latency", ms=latency_ms, seconds=60)  # every answer is slow for a while
        passes = []
        for n, (action, gap_ms) in enumerate(actions):
            await asyncio.sleep(gap_ms / 1000)
            if action == "pass":
                passes.append(asyncio.create_task(rig.reconciler.reconcile(f"race {n}")))
            else:
                await _act(rig, action, n, price)
        passes.append(asyncio.create_task(rig.reconciler.reconcile("last")))
        reports = list(await asyncio.gather(*passes))
        await rig.assert_matches_exchange()
        return reports


# No "explain" phase: it traces every line of a failing example, the engine and the simulator both.
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow],
          phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink))  # fmt: skip
@given(actions=ACTIONS, latency_ms=st.sampled_from((0, 400, 1500)))
def test_trades_and_orders_racing_passes_never_cause_a_false_mismatch(actions: list[tuple[str, int]], latency_ms: int) -> None:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        reports = runner.run(_scenario(actions, latency_ms))
    for report in reports:
        assert report.error is None and report.findings == (), report
