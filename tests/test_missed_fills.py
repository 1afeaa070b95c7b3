"""Fills the user stream never delivered reach the journal through reconciliation (found by the soak).

The chaos soak found trades of ours on the exchange that the journal never had: a take-profit that
triggered while the user socket was half-open, a stop that triggered while the engine was down.
Reconciliation adopted the positions and balances, but a snapshot has no fills, so realized PnL,
fees and the daily loss limit missed them. Every pass now reads the trade history since the
newest fill it knows (``aegis.reconcile.fills``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aegis.domain import Side
from aegis.reconcile.fills import missed_fills
from aegis.state import StateStore
from aegis.trading.ledger import Ledger
from tests.harness import DEMO_API_KEY, until
from tests.rigs import SYMBOL
from tests.trading_rig import TradingRig, settled, trading_rig


def exchange_trades(rig: TradingRig) -> set[tuple[str, int, int]]:
    account = rig.account.sim.sim.exchange.accounts[DEMO_API_KEY]
    return {(t.symbol, t.order_id, t.trade_id) for t in account.trades}


async def journaled(rig: TradingRig) -> dict[tuple[str, int, int], str]:
    return {(f.symbol, f.order_id, f.trade_id): f.client_order_id for f in await rig.journal.fills()}


async def test_a_fill_the_stream_lost_is_journaled_after_the_next_reconcile_pass(tmp_path: Path) -> None:
    async with trading_rig(tmp_path) as rig:
        reconciler = rig.account.reconciler
        assert reconciler is not None
        reconciler.catch_up = await missed_fills(rig.account.rest, rig.account.state, [SYMBOL], rig.journal)
        pause = await rig.account.admin.inject("pause_user", seconds=600)
        sub = await rig.market(Side.BUY, "0.002", "lost-fill")
        await settled(rig)
        assert exchange_trades(rig) and await journaled(rig) == {}  # the stream said nothing
        await rig.account.admin.clear_fault(pause)
        await reconciler.pass_now("test", "after the pause")
        await settled(rig)
        assert await journaled(rig) == dict.fromkeys(exchange_trades(rig), sub.client_id)
        fill = (await rig.journal.fills())[0]
        assert fill.commission_asset == "USDT" and fill.commission > 0  # with its fee, as the stream gives it
        await reconciler.pass_now("test", "again")
        await settled(rig)
        assert len(await rig.journal.fills()) == len(exchange_trades(rig))  # recorded once


async def test_after_a_restart_only_the_fills_the_journal_lacks_are_recorded(tmp_path: Path) -> None:
    async with trading_rig(tmp_path) as rig:
        await rig.market(Side.BUY, "0.002", "seen")
        await until(lambda: rig.trader.ledger.fills >= 1, 10.0, "the streamed fill")
        await settled(rig)
        before = await journaled(rig)
        await rig.account.admin.inject("pause_user", seconds=600)  # the engine is "down": nothing arrives
        lost = await rig.market(Side.SELL, "0.002", "while-down")
        await settled(rig)
        # A new life: an empty store, the same journal; its cursors come from the journal.
        fresh = StateStore()
        ledger = Ledger(rig.journal, fresh, rig.account.clock)
        writer = asyncio.create_task(ledger.run())
        catch_up = await missed_fills(rig.account.rest, fresh, [SYMBOL], rig.journal)
        assert await catch_up() == len(exchange_trades(rig)) - len(before)
        await ledger.flush()
        writer.cancel()
        after = await journaled(rig)
        assert set(after) == exchange_trades(rig)
        assert {after[k] for k in set(after) - set(before)} == {lost.client_id}
        assert await catch_up() == 0
