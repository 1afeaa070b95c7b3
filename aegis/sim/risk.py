"""Funding and liquidation: what happens to open positions while the clock runs.

Funding is settled at every 8-hour boundary (00:00, 08:00, 16:00 UTC) at the mark price:
positive rates make longs pay. A cross account whose margin balance (wallet + unrealized
PnL) falls to its maintenance margin is liquidated: open orders are cancelled and every
position is closed at the mark with the symbol's liquidation fee (``autoclose-`` client ids,
execution type CALCULATED); a negative wallet is cleared by the insurance fund. MARGIN_CALL
is pushed once when maintenance reaches 80% of the margin balance.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from aegis.sim import payloads
from aegis.sim.accounts import Account, Order
from aegis.sim.candles import Candle
from aegis.sim.market import fixed
from aegis.sim.symbols import ZERO

if TYPE_CHECKING:
    from aegis.sim.exchange import Exchange

EIGHT_HOURS_MS = 8 * 3600 * 1000
MARGIN_CALL_RATIO = Decimal("0.8")  # maintenance / margin balance at which MARGIN_CALL is pushed
_Q8 = Decimal("0.00000001")


class Risk:
    def __init__(self, exchange: Exchange) -> None:
        self.ex = exchange
        now = exchange.clock.now_ms()
        self._funded_through = now - now % EIGHT_HOURS_MS
        self._called: set[str] = set()

    # ----- funding -----
    def funding(self, now: int) -> None:
        """Settle every funding boundary passed since the last call (a jump passes several)."""
        if now < self._funded_through:  # the clock was moved back
            self._funded_through = now - now % EIGHT_HOURS_MS
        nxt = self._funded_through + EIGHT_HOURS_MS
        while nxt <= now:
            self._settle(nxt)
            self._funded_through = nxt
            nxt += EIGHT_HOURS_MS

    def _settle(self, at: int) -> None:
        rate = self.ex.config.funding_rate
        if not rate:
            return
        for acct in self.ex.accounts.values():
            changes: dict[str, Decimal] = {}
            for sym, pos in acct.positions.items():
                if not pos.amount:
                    continue
                asset = self.ex.info.symbols[sym].margin_asset
                fee = (pos.amount * self.ex.market.price(sym, at) * rate).quantize(_Q8)
                acct.balances[asset] = acct.balances.get(asset, ZERO) - fee
                changes[asset] = changes.get(asset, ZERO) - fee
            for asset, change in changes.items():
                acct.balance_update_time[asset] = at
                self.ex.bus.publish_user(
                    acct.api_key,
                    payloads.balance_update(
                        now=at, asset=asset, wallet=acct.balances[asset], change=change, reason="FUNDING_FEE"
                    ),
                )

    # ----- liquidation -----
    def margin(
        self, acct: Account, asset: str, at: int, prices: dict[str, Decimal]
    ) -> tuple[Decimal, Decimal]:
        """(margin balance, maintenance margin) of ``asset``'s cross positions at ``at``
        (``prices`` overrides the mark of some symbols)."""
        balance = acct.balances.get(asset, ZERO)
        maint = ZERO
        for sym, pos in acct.positions.items():
            spec = self.ex.info.symbols[sym]
            if not pos.amount or spec.margin_asset != asset:
                continue
            mark = prices.get(sym) or self.ex.market.price(sym, at)
            balance += pos.amount * (mark - pos.entry_price)
            notional = abs(pos.amount * mark)
            bracket = spec.bracket_for(notional)
            maint += notional * bracket.mmr - bracket.cum
        return balance, maint

    def check(self, symbol: str, c: Candle, off0: int, off1: int, at: int) -> None:
        """Liquidate the accounts holding ``symbol`` whose margin balance reached maintenance
        anywhere on this stretch of path (at its worst price for them, not just at its end)."""
        holders = [a for a in self.ex.accounts.values() if a.amount(symbol)]
        if not holders:
            return
        asset = self.ex.info.symbols[symbol].margin_asset
        lo, hi = self.ex.market.path_range(symbol, c, off0, off1)
        for acct in holders:
            worst = {symbol: lo if acct.amount(symbol) > 0 else hi}
            balance, maint = self.margin(acct, asset, at, worst)
            if balance <= maint:
                self._called.discard(acct.api_key)
                self.liquidate(acct, asset, at, worst)
            elif maint >= balance * MARGIN_CALL_RATIO:
                if acct.api_key not in self._called:  # once per episode, not on every tick
                    self._called.add(acct.api_key)
                    self.ex.bus.publish_user(acct.api_key, self._margin_call(acct, asset, at, worst))
            else:
                self._called.discard(acct.api_key)

    def _margin_call(
        self, acct: Account, asset: str, at: int, prices: dict[str, Decimal]
    ) -> payloads.Payload:
        rows = []
        for sym, pos in acct.positions.items():
            spec = self.ex.info.symbols[sym]
            if not pos.amount or spec.margin_asset != asset:
                continue
            mark = prices.get(sym) or self.ex.market.price(sym, at)
            notional = abs(pos.amount * mark)
            bracket = spec.bracket_for(notional)
            rows.append(
                {
                    "s": sym,
                    "ps": "BOTH",
                    "pa": payloads.norm(pos.amount),
                    "mt": "CROSSED",
                    "iw": "0",
                    "mp": fixed(mark, 8),
                    "up": fixed(pos.amount * (mark - pos.entry_price), 8),
                    "mm": fixed(notional * bracket.mmr - bracket.cum, 8),
                }
            )
        return {"e": "MARGIN_CALL", "E": at, "cw": payloads.f8(acct.balances.get(asset, ZERO)), "p": rows}

    def liquidate(self, acct: Account, asset: str, at: int, prices: dict[str, Decimal]) -> None:
        ex = self.ex
        for o in list(acct.open_orders.values()):
            ex._finish(acct, ex.info.symbols[o.symbol], o, "CANCELED", at, True)
        for algo in acct.open_algo():
            ex._end_algo(acct, algo, "CANCELED", at)
        for sym, pos in list(acct.positions.items()):
            spec = ex.info.symbols[sym]
            if not pos.amount or spec.margin_asset != asset:
                continue
            mark = prices.get(sym) or ex.market.price(sym, at)
            order = Order(
                order_id=next(ex._order_ids),
                client_order_id=f"autoclose-{at}",
                symbol=sym,
                side="SELL" if pos.amount > 0 else "BUY",
                type="LIMIT",
                orig_type="LIMIT",
                time_in_force="IOC",
                orig_qty=abs(pos.amount),
                price=mark,
                stop_price=ZERO,
                reduce_only=True,
                close_position=False,
                time=at,
                update_time=at,
            )
            acct.orders[order.order_id] = order
            ex._fill(
                acct,
                spec,
                order,
                order.orig_qty,
                mark,
                maker=False,
                now=at,
                emit=True,
                fee_rate=spec.liquidation_fee,
                execution="CALCULATED",
            )
        deficit = acct.balances.get(asset, ZERO)
        if deficit < 0:
            acct.balances[asset] = ZERO
            ex.bus.publish_user(
                acct.api_key,
                payloads.balance_update(
                    now=at, asset=asset, wallet=ZERO, change=-deficit, reason="INSURANCE_CLEAR"
                ),
            )
