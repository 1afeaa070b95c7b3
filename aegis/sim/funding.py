"""Funding: settled on open positions at every 8-hour boundary (00:00, 08:00, 16:00 UTC).

At the mark price of the boundary; a positive rate makes longs pay shorts. A clock jump over
several boundaries settles each of them, in order.
"""

from __future__ import annotations

from decimal import Decimal

from aegis.sim import payloads
from aegis.sim.accounts import Account
from aegis.sim.bus import Bus
from aegis.sim.config import SimConfig
from aegis.sim.income import IncomeLedger
from aegis.sim.market import Market
from aegis.sim.symbols import ZERO, ExchangeInfo

EIGHT_HOURS_MS = 8 * 3600 * 1000
_Q8 = Decimal("0.00000001")


class Funding:
    def __init__(
        self,
        config: SimConfig,
        info: ExchangeInfo,
        market: Market,
        bus: Bus,
        accounts: dict[str, Account],
        ledger: IncomeLedger,
        now: int,
    ) -> None:
        self.ledger = ledger
        self.config = config
        self.info = info
        self.market = market
        self.bus = bus
        self.accounts = accounts
        self._funded_through = now - now % EIGHT_HOURS_MS

    def settle_due(self, now: int) -> None:
        """Settle every funding boundary passed since the last call (a jump passes several)."""
        if now < self._funded_through:  # the clock was moved back
            self._funded_through = now - now % EIGHT_HOURS_MS
        nxt = self._funded_through + EIGHT_HOURS_MS
        while nxt <= now:
            self._settle(nxt)
            self._funded_through = nxt
            nxt += EIGHT_HOURS_MS

    def _settle(self, at: int) -> None:
        rate = self.config.funding_rate
        if not rate:
            return
        for acct in self.accounts.values():
            changes: dict[str, Decimal] = {}
            for sym, pos in acct.positions.items():
                if not pos.amount:
                    continue
                asset = self.info.symbols[sym].margin_asset
                fee = (pos.amount * self.market.price(sym, at) * rate).quantize(_Q8)
                acct.balances[asset] = acct.balances.get(asset, ZERO) - fee
                changes[asset] = changes.get(asset, ZERO) - fee
                self.ledger.book(acct, "FUNDING_FEE", -fee, asset, at, sym)
            for asset, change in changes.items():
                acct.balance_update_time[asset] = at
                self.bus.publish_user(
                    acct.api_key,
                    payloads.balance_update(
                        now=at, asset=asset, wallet=acct.balances[asset], change=change, reason="FUNDING_FEE"
                    ),
                )
