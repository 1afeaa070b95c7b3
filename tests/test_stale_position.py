"""No intent acts on a position that does not show the engine's own fill yet (found by the soak).

With the user stream silent (a half-open socket, before the silence check notices), a MARKET order's
REST answer says it FILLED, yet the stored position is the one from before: the next candle's
intent sized from it re-entered a position the engine already had, or closed one twice (the
exchange refused that reduce-only order: -2022). Such an intent is now refused, and a
reconciliation is asked for; once the position shows the fill, intents go through again.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from aegis.domain import ZERO, Side
from aegis.trading.intents import Intent, Outcome
from tests.harness import DEMO_API_KEY
from tests.rigs import SYMBOL
from tests.trading_rig import settled, trading_rig


async def test_an_intent_waits_until_the_position_shows_our_fill(tmp_path: Path) -> None:
    async with trading_rig(tmp_path) as rig:
        reconciler = rig.account.reconciler
        assert reconciler is not None
        pause = await rig.account.admin.inject("pause_user", seconds=3600)
        entry = await rig.market(Side.BUY, "0.002", "entry")
        assert entry.outcome is Outcome.PLACED and rig.account.store_position() == 0  # the stream is silent
        close = await rig.trader.execute(Intent("test", SYMBOL, "close-1", target_position=ZERO))
        assert close.outcome is Outcome.REFUSED and "does not show our fill" in close.reason
        again = await rig.market(Side.BUY, "0.002", "entry-again")
        assert again.outcome is Outcome.REFUSED  # no second entry on a position believed flat
        assert any("does not show our fill" in r.reason for r in rig.account.requests.history)
        await reconciler.pass_now("test", "the pass the refusal asked for")
        await rig.account.admin.clear_fault(pause)
        assert rig.account.store_position() == Decimal("0.002")
        close = await rig.trader.execute(Intent("test", SYMBOL, "close-2", target_position=ZERO))
        assert close.outcome is Outcome.PLACED
        await settled(rig)
        assert await rig.account.position() == 0
        audit = await rig.account.admin.audit(DEMO_API_KEY)
        assert [r for r in audit if r["http_status"] != 200] == []  # no -2022, nothing refused
