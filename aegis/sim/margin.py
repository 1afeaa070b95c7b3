"""Margin: what a cross account's positions and open orders are worth and tie up, at the mark.

One-way positions, cross margin. These views feed the -2019 check on new orders and triggers,
the account/positionRisk/balance bodies and the liquidation check.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from aegis.sim import errors
from aegis.sim.accounts import Account, Order
from aegis.sim.config import SimConfig
from aegis.sim.market import Market
from aegis.sim.symbols import ZERO, ExchangeInfo, SymbolSpec


@dataclass(frozen=True, slots=True)
class PositionView:
    """A position valued at the current mark price."""

    symbol: str
    amount: Decimal
    entry: Decimal
    break_even: Decimal
    mark: Decimal
    unrealized: Decimal
    notional: Decimal
    leverage: int
    initial_margin: Decimal
    maint_margin: Decimal
    open_order_margin: Decimal
    bid_notional: Decimal
    ask_notional: Decimal
    liquidation: Decimal
    max_notional: Decimal
    update_time: int


@dataclass(frozen=True, slots=True)
class AssetView:
    asset: str
    wallet: Decimal
    unrealized: Decimal
    position_margin: Decimal
    order_margin: Decimal
    maint_margin: Decimal
    update_time: int

    @property
    def margin_balance(self) -> Decimal:
        return self.wallet + self.unrealized

    @property
    def available(self) -> Decimal:
        return self.margin_balance - self.position_margin - self.order_margin

    @property
    def max_withdraw(self) -> Decimal:
        return max(ZERO, min(self.wallet, self.available))


def active_symbols(acct: Account) -> list[str]:
    """Symbols with a position or open orders (what v3 account/positionRisk list)."""
    syms = {s for s, p in acct.positions.items() if p.amount}
    syms |= {o.symbol for o in acct.open_orders.values()}
    return sorted(syms)


def book_notional(acct: Account, symbol: str) -> tuple[Decimal, Decimal]:
    """Notional of the account's resting LIMIT bids and asks on ``symbol`` (events' b/a)."""
    bid = ask = ZERO
    for o in acct.open_orders.values():
        if o.symbol == symbol and o.type == "LIMIT":
            if o.side == "BUY":
                bid += o.price * o.remaining
            else:
                ask += o.price * o.remaining
    return bid, ask


class Margin:
    """Leverage, margin requirements and valued views of positions and assets."""

    def __init__(self, config: SimConfig, info: ExchangeInfo, market: Market) -> None:
        self.config = config
        self.info = info
        self.market = market

    def leverage_of(self, acct: Account, symbol: str) -> int:
        return acct.leverage.get(
            symbol, min(self.config.default_leverage, self.info.symbols[symbol].max_leverage)
        )

    def max_notional(self, spec: SymbolSpec, leverage: int) -> Decimal:
        """The bracket cap at ``leverage`` (maxNotionalValue)."""
        return max((b.cap for b in spec.brackets if b.leverage >= leverage), default=spec.brackets[0].cap)

    def break_even(self, amount: Decimal, entry: Decimal) -> Decimal:
        if not amount:
            return ZERO
        fee = self.config.taker_fee
        return entry * (1 + fee) if amount > 0 else entry * (1 - fee)

    def order_margin(self, acct: Account, o: Order) -> Decimal:
        pos = acct.amount(o.symbol)
        reducing = abs(pos) if (pos > 0) != (o.side == "BUY") and pos else ZERO
        qty = max(ZERO, o.remaining - reducing)
        return qty * o.price / self.leverage_of(acct, o.symbol)

    def check(self, acct: Account, spec: SymbolSpec, side: str, qty: Decimal, price: Decimal) -> None:
        """-2019 when the position-increasing part of the order needs more than is available."""
        pos = acct.amount(spec.symbol)
        reducing = abs(pos) if pos and (pos > 0) != (side == "BUY") else ZERO
        need = max(ZERO, qty - reducing) * price / self.leverage_of(acct, spec.symbol)
        if need and need > self.asset_view(acct, spec.margin_asset).available:
            raise errors.margin_insufficient()

    def position_view(self, acct: Account, symbol: str) -> PositionView:
        spec = self.info.symbols[symbol]
        pos = acct.positions.get(symbol)
        amount = pos.amount if pos else ZERO
        entry = pos.entry_price if pos else ZERO
        mark = self.market.price(symbol)
        lev = self.leverage_of(acct, symbol)
        notional = amount * mark
        bracket = spec.bracket_for(abs(notional))
        maint = max(ZERO, abs(notional) * bracket.mmr - bracket.cum) if amount else ZERO
        bid, ask = book_notional(acct, symbol)
        order_margin = sum(
            (self.order_margin(acct, o) for o in acct.open_orders.values() if o.symbol == symbol), ZERO
        )
        liq = ZERO
        if amount:
            wallet = acct.balances.get(spec.margin_asset, ZERO)
            liq = max(ZERO, entry - (wallet - maint) / amount)
        return PositionView(
            symbol,
            amount,
            entry,
            self.break_even(amount, entry),
            mark,
            amount * (mark - entry),
            notional,
            lev,
            abs(notional) / lev,
            maint,
            order_margin,
            bid,
            ask,
            liq,
            self.max_notional(spec, lev),
            pos.update_time if pos else 0,
        )

    def asset_view(self, acct: Account, asset: str) -> AssetView:
        upnl = pm = om = mm = ZERO
        for sym in active_symbols(acct):
            if self.info.symbols[sym].margin_asset != asset:
                continue
            v = self.position_view(acct, sym)
            upnl += v.unrealized
            pm += v.initial_margin
            om += v.open_order_margin
            mm += v.maint_margin
        return AssetView(
            asset, acct.balances.get(asset, ZERO), upnl, pm, om, mm, acct.balance_update_time.get(asset, 0)
        )
