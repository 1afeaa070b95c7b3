"""Liquidation: a cross account whose margin balance falls to its maintenance margin is closed out.

Checked on every stretch of path a held symbol walks, at the stretch's worst price for the
holder (not just its end). Open orders are cancelled and every position is closed at the mark
with the symbol's liquidation fee (``autoclose-`` client ids, execution type CALCULATED); a
negative wallet is cleared by the insurance fund. MARGIN_CALL is pushed once per episode when
maintenance reaches 80% of the margin balance.
"""

from __future__ import annotations

from decimal import Decimal

from aegis.sim import payloads
from aegis.sim.accounts import Account, Order
from aegis.sim.algo import AlgoBook
from aegis.sim.bus import Bus
from aegis.sim.candles import Candle
from aegis.sim.income import IncomeLedger
from aegis.sim.market import Market
from aegis.sim.matching import Matcher
from aegis.sim.symbols import ZERO, ExchangeInfo
from aegis.sim.wire import f8, fixed, norm

MARGIN_CALL_RATIO = Decimal("0.8")  # maintenance / margin balance at which MARGIN_CALL is pushed


class Liquidator:
    def __init__(
        self,
        info: ExchangeInfo,
        market: Market,
        bus: Bus,
        matcher: Matcher,
        algos: AlgoBook,
        accounts: dict[str, Account],
        ledger: IncomeLedger,
    ) -> None:
        self.ledger = ledger
        self.info = info
        self.market = market
        self.bus = bus
        self.matcher = matcher
        self.algos = algos
        self.accounts = accounts
        self._called: set[str] = set()

    def margin(
        self, acct: Account, asset: str, at: int, prices: dict[str, Decimal]
    ) -> tuple[Decimal, Decimal]:
        """(margin balance, maintenance margin) of ``asset``'s cross positions at ``at``
        (``prices`` overrides the mark of some symbols)."""
        balance = acct.balances.get(asset, ZERO)
        maint = ZERO
        for sym, pos in acct.positions.items():
            spec = self.info.symbols[sym]
            if not pos.amount or spec.margin_asset != asset:
                continue
            mark = prices.get(sym) or self.market.price(sym, at)
            balance += pos.amount * (mark - pos.entry_price)
            notional = abs(pos.amount * mark)
            bracket = spec.bracket_for(notional)
            maint += notional * bracket.mmr - bracket.cum
        return balance, maint

    def check(self, symbol: str, c: Candle, off0: int, off1: int, at: int) -> None:
        """Liquidate the accounts holding ``symbol`` whose margin balance reached maintenance
        anywhere on this stretch of path (at its worst price for them, not just at its end)."""
        holders = [a for a in self.accounts.values() if a.amount(symbol)]
        if not holders:
            return
        asset = self.info.symbols[symbol].margin_asset
        lo, hi = self.market.path_range(symbol, c, off0, off1)
        for acct in holders:
            worst = {symbol: lo if acct.amount(symbol) > 0 else hi}
            balance, maint = self.margin(acct, asset, at, worst)
            if balance <= maint:
                self._called.discard(acct.api_key)
                self.liquidate(acct, asset, at, worst)
            elif maint >= balance * MARGIN_CALL_RATIO:
                if acct.api_key not in self._called:  # once per episode, not on every tick
                    self._called.add(acct.api_key)
                    self.bus.publish_user(acct.api_key, self._margin_call(acct, asset, at, worst))
            else:
                self._called.discard(acct.api_key)

    def _margin_call(
        self, acct: Account, asset: str, at: int, prices: dict[str, Decimal]
    ) -> payloads.Payload:
        rows = []
        for sym, pos in acct.positions.items():
            spec = self.info.symbols[sym]
            if not pos.amount or spec.margin_asset != asset:
                continue
            mark = prices.get(sym) or self.market.price(sym, at)
            notional = abs(pos.amount * mark)
            bracket = spec.bracket_for(notional)
            rows.append(
                {
                    "s": sym,
                    "ps": "BOTH",
                    "pa": norm(pos.amount),
                    "mt": "CROSSED",
                    "iw": "0",
                    "mp": fixed(mark, 8),
                    "up": fixed(pos.amount * (mark - pos.entry_price), 8),
                    "mm": fixed(notional * bracket.mmr - bracket.cum, 8),
                }
            )
        return {"e": "MARGIN_CALL", "E": at, "cw": f8(acct.balances.get(asset, ZERO)), "p": rows}

    def liquidate(self, acct: Account, asset: str, at: int, prices: dict[str, Decimal]) -> None:
        for o in list(acct.open_orders.values()):
            self.matcher.finish(acct, self.info.symbols[o.symbol], o, "CANCELED", at, True)
        for algo in acct.open_algo():
            self.algos.end(acct, algo, "CANCELED", at)
        for sym, pos in list(acct.positions.items()):
            spec = self.info.symbols[sym]
            if not pos.amount or spec.margin_asset != asset:
                continue
            mark = prices.get(sym) or self.market.price(sym, at)
            order = Order(
                order_id=self.matcher.next_order_id(),
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
            self.matcher.fill(
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
            self.ledger.book(acct, "INSURANCE_CLEAR", -deficit, asset, at)
            self.bus.publish_user(
                acct.api_key,
                payloads.balance_update(
                    now=at, asset=asset, wallet=ZERO, change=-deficit, reason="INSURANCE_CLEAR"
                ),
            )
