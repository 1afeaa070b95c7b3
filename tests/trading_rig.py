"""The trading side of the engine against the simulator: account rig + filters + journal + Trader."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from aegis.config import OrderSettings, RiskSettings
from aegis.domain import Side
from aegis.trading.filters import FilterBook
from aegis.trading.intents import Intent, Submission
from aegis.trading.journal import SqliteJournal
from aegis.trading.trader import Trader
from tests.harness import until
from tests.rigs import SYMBOL, AccountRig, account_rig


@dataclass
class TradingRig:
    account: AccountRig
    trader: Trader
    journal: SqliteJournal
    prices: dict[str, Decimal]

    async def price(self, symbol: str = SYMBOL) -> Decimal:
        """The simulator's current price of ``symbol`` (what the market feed would report)."""
        value = self.account.sim.sim.market.price(symbol)
        self.prices[symbol] = value
        return value

    async def market(self, side: Side, quantity: str, cause: str, symbol: str = SYMBOL, **kw: Any) -> Submission:
        await self.price(symbol)
        return await self.trader.execute(Intent("test", symbol, cause, side=side, quantity=Decimal(quantity), **kw))


@contextlib.asynccontextmanager
async def trading_rig(
    tmp_path: Path,
    *,
    orders: dict[str, Any] | None = None,
    risk: dict[str, Any] | None = None,
    sim: dict[str, Any] | None = None,
    dry_run: bool = False,
) -> AsyncIterator[TradingRig]:
    async with account_rig(sim=sim) as account:
        rest = account.rest
        filters = FilterBook(rest, account.clock)
        filters.adopt(await rest.exchange_info())
        journal = await SqliteJournal.open(tmp_path / "journal.sqlite")
        prices: dict[str, Decimal] = {}
        risk_settings = RiskSettings(**{"max_daily_loss": Decimal(0), **(risk or {})})
        trader = Trader(
            rest, filters, account.state, journal, account.clock, prices.get,
            OrderSettings(**{"unknown_outcome_window_s": 30.0, "unknown_outcome_poll_s": 1.0, **(orders or {})}),
            risk_settings, dry_run=dry_run, reconcile=account.requests,
        )  # fmt: skip
        tasks = [asyncio.create_task(trader.ledger.run()), asyncio.create_task(trader.protection.run())]
        await trader.recover()
        try:
            yield TradingRig(account, trader, journal, prices)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await journal.close()


async def settled(rig: TradingRig) -> None:
    """Every queued journal write done and the reconciler idle."""
    await rig.trader.ledger.flush()
    await until(lambda: rig.account.requests.pending == 0, 60.0, "reconciler idle")
