"""The unknown-outcome window and the reconciler's second look are exchange time (found by the soak).

Against a separate ``aegis sim`` running faster than the wall (``aegis run --sim-url``), the engine's
``Clock`` runs at the exchange's speed on an ordinary event loop. ``find_order`` measured its window
on the loop (120 wall seconds: 20 exchange hours at 600x), so a restarted engine with an intent
the exchange never got stayed "trading not ready" for most of a simulated day; the reconciler's
recheck waited 2 wall seconds (20 exchange minutes). Both now read the engine's clock. Here the
clock runs 600 times faster than the (virtual) loop, as it does against a 600x simulator.
"""

from __future__ import annotations

import asyncio

from aegis.clock import Clock
from aegis.reconcile.reconciler import Reconciler
from aegis.trading.resolve import FateKind, find_order
from tests.rigs import SYMBOL, account_rig

SPEED = 600.0


async def test_an_order_is_declared_absent_after_its_window_of_exchange_time() -> None:
    async with account_rig() as rig:
        fast = Clock(SPEED)
        loop = asyncio.get_running_loop()
        started = loop.time()
        fate = await find_order(
            rig.rest, rig.state, SYMBOL, "ae.neverplacedxxxx.e0", algo=False, sent_ms=rig.clock.now_ms(),
            window_s=120.0, poll_s=3.0, clock=fast,
        )  # fmt: skip
        assert fate.kind is FateKind.ABSENT
        assert fate.looks >= 10  # polled every 3 exchange seconds across the window...
        assert loop.time() - started < 120.0 / SPEED + 1.0  # ...which lasted 0.2 s of loop time, not 120


async def test_the_reconcilers_second_look_waits_exchange_seconds() -> None:
    async with account_rig(reconciler=False) as rig:
        # The engine's reconciler, its clock running as against a 600x exchange.
        reconciler = Reconciler(rig.rest, rig.rest.server_clock, rig.state, rig.requests, Clock(SPEED))
        await reconciler.reconcile("start-up")
        await rig.trade("BUY", events=False)  # a divergence: the pass looks twice before acting
        loop = asyncio.get_running_loop()
        started = loop.time()
        report = await reconciler.reconcile("test")
        assert "position" in [f.kind for f in report.findings]
        assert loop.time() - started < reconciler.settings.recheck_delay_s / SPEED + 1.0
