"""Matching: orders taken at the current price or rested, and resting orders filled along the path.

MARKET orders and marketable LIMIT orders take at the current price of the replayed path;
resting LIMIT orders fill (maker, partially when large) as the market walks the path through
their price. Every fill moves the position and the wallet and publishes Binance's events in
Binance's real order: TRADE_LITE, ORDER_TRADE_UPDATE NEW, ACCOUNT_UPDATE, ORDER_TRADE_UPDATE TRADE.
"""

from __future__ import annotations

import itertools
from decimal import ROUND_DOWN, Decimal
from typing import Any

from aegis.sim import fillmodel, payloads
from aegis.sim.accounts import Account, Order, Trade
from aegis.sim.bus import Bus, Payload
from aegis.sim.candles import Candle
from aegis.sim.clock import MINUTE_MS
from aegis.sim.config import SimConfig
from aegis.sim.income import IncomeLedger
from aegis.sim.margin import Margin, book_notional
from aegis.sim.market import Market
from aegis.sim.symbols import ZERO, ExchangeInfo, SymbolSpec

ORDER_ID_BASE = 8_389_765_739_703_625_592  # > 2**53, as real ids are: clients must not use floats
TRADE_ID_BASE = 5_612_428_004
_FEE_QUANTUM = Decimal("0.00000001")


class Matcher:
    """The order book of every account: placement, fills, cancels and path-driven matching."""

    def __init__(
        self,
        config: SimConfig,
        bus: Bus,
        info: ExchangeInfo,
        market: Market,
        margin: Margin,
        accounts: dict[str, Account],
        ledger: IncomeLedger,
    ) -> None:
        self.ledger = ledger
        self.fill_model = fillmodel.parse(config.fill_model)
        self.config = config
        self.bus = bus
        self.info = info
        self.market = market
        self.margin = margin
        self.accounts = accounts
        self._order_ids = itertools.count(ORDER_ID_BASE)
        self._trade_ids = itertools.count(TRADE_ID_BASE)
        # symbol -> {(api_key, order id)}: what the market loop must walk and match
        self._resting: dict[str, dict[tuple[str, int], None]] = {}

    def next_order_id(self) -> int:
        return next(self._order_ids)

    def resting_symbols(self) -> set[str]:
        return {s for s, book in self._resting.items() if book}

    def taker_price(self, spec: SymbolSpec, side: str, price: Decimal, qty: Decimal, now: int) -> Decimal:
        """What a taker order of ``qty`` pays at current price ``price``, by the fill model."""
        volume = self.market.candle(spec.symbol, now).volume
        return self.fill_model.price(spec, side, price, qty, volume)

    # ----- placement and cancels -----
    def place(
        self, acct: Account, spec: SymbolSpec, order: Order, take_at: Decimal | None, now: int, emit: bool
    ) -> None:
        """Record the order; take immediately at ``take_at`` (current price) or rest on the book."""
        acct.orders[order.order_id] = order
        acct.client_ids[order.client_order_id] = order.order_id
        if take_at is None:
            if order.time_in_force == "IOC":
                self.publish(acct, emit, self.order_event(acct, spec, order, now, "NEW", status="NEW"))
                self.finish(acct, spec, order, "EXPIRED", now, emit)
                return
            acct.open_orders[order.order_id] = order
            self._resting.setdefault(order.symbol, {})[(acct.api_key, order.order_id)] = None
            self.market.ensure(order.symbol)
            self.publish(acct, emit, self.order_event(acct, spec, order, now, "NEW"))
            return
        fill_px = self.taker_price(spec, order.side, take_at, order.orig_qty, now)
        if order.type == "LIMIT":
            fill_px = min(fill_px, order.price) if order.side == "BUY" else max(fill_px, order.price)
        qty = order.orig_qty
        if order.reduce_only:
            qty = min(qty, abs(acct.amount(order.symbol)))
        new_event = self.order_event(acct, spec, order, now, "NEW", status="NEW")
        acct.open_orders[order.order_id] = order  # briefly, so b/a notionals are right in events
        if qty > 0:
            self.fill(acct, spec, order, qty, fill_px, maker=False, now=now, emit=emit, new_event=new_event)
        else:
            self.publish(acct, emit, new_event)
        if order.is_open:
            self.finish(acct, spec, order, "EXPIRED", now, emit)

    def finish(self, acct: Account, spec: SymbolSpec, order: Order, status: str, now: int, emit: bool) -> None:
        """Take an order off the book as CANCELED or EXPIRED and say so."""
        order.status = status
        order.update_time = now
        self._unrest(acct, order)
        self.publish(acct, emit, self.order_event(acct, spec, order, now, status))

    def _unrest(self, acct: Account, order: Order) -> None:
        acct.open_orders.pop(order.order_id, None)
        book = self._resting.get(order.symbol)
        if book is not None:
            book.pop((acct.api_key, order.order_id), None)

    # ----- fills -----
    def fill(
        self,
        acct: Account,
        spec: SymbolSpec,
        order: Order,
        qty: Decimal,
        price: Decimal,
        *,
        maker: bool,
        now: int,
        emit: bool,
        new_event: Payload | None = None,
        fee_rate: Decimal | None = None,
        execution: str = "TRADE",
    ) -> None:
        """Apply one fill: position, wallet, fees, trade; events in Binance's real order."""
        pos = acct.position(order.symbol)
        signed = qty if order.side == "BUY" else -qty
        realized = ZERO
        if pos.amount == 0 or (pos.amount > 0) == (signed > 0):
            total = abs(pos.amount) + qty
            pos.entry_price = (abs(pos.amount) * pos.entry_price + qty * price) / total
            pos.amount += signed
        else:
            closing = min(qty, abs(pos.amount))
            direction = 1 if pos.amount > 0 else -1
            realized = closing * (price - pos.entry_price) * direction
            pos.amount += signed
            if pos.amount == 0:
                pos.entry_price = ZERO
            elif (pos.amount > 0) != (direction > 0):
                pos.entry_price = price
        pos.realized += realized
        pos.update_time = now
        if fee_rate is None:
            fee_rate = self.config.maker_fee if maker else self.config.taker_fee
        commission = (price * qty * fee_rate).quantize(_FEE_QUANTUM)
        asset = spec.margin_asset
        acct.balances[asset] = acct.balances.get(asset, ZERO) + realized - commission
        acct.balance_update_time[asset] = now
        order.executed_qty += qty
        order.cum_quote += price * qty
        order.update_time = now
        order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
        trade_id = next(self._trade_ids)
        self.ledger.book(acct, "REALIZED_PNL", realized, asset, now, order.symbol, trade_id)
        # A liquidation's fee is its clearance fee, listed by Binance as INSURANCE_CLEAR.
        fee_type = "INSURANCE_CLEAR" if execution == "CALCULATED" else "COMMISSION"
        self.ledger.book(acct, fee_type, -commission, asset, now, order.symbol, trade_id)
        acct.add_trade(
            Trade(trade_id, order.order_id, order.symbol, order.side, price, qty, realized, commission, asset, now, maker)
        )
        if order.status == "FILLED":
            self._unrest(acct, order)
        if emit:
            self._publish_fill(acct, spec, order, qty, price, trade_id, maker, now, new_event, commission, realized, execution)
        if pos.amount == 0:
            self._expire_reduce_only(acct, spec, now, emit)

    def _publish_fill(
        self,
        acct: Account,
        spec: SymbolSpec,
        order: Order,
        qty: Decimal,
        price: Decimal,
        trade_id: int,
        maker: bool,
        now: int,
        new_event: Payload | None,
        commission: Decimal,
        realized: Decimal,
        execution: str,
    ) -> None:
        publish = self.bus.publish_user
        key = acct.api_key
        publish(key, payloads.trade_lite(order, spec, now=now, qty=qty, price=price, trade_id=trade_id, maker=maker))
        if new_event is not None:
            publish(key, new_event)
        pos = acct.position(order.symbol)
        mark = self.market.price(order.symbol, now)
        asset = spec.margin_asset
        publish(
            key,
            payloads.account_update(
                now=now,
                asset=asset,
                wallet=acct.balances[asset],
                symbol=order.symbol,
                amount=pos.amount,
                entry=pos.entry_price,
                break_even=self.margin.break_even(pos.amount, pos.entry_price),
                realized=pos.realized,
                unrealized=pos.amount * (mark - pos.entry_price),
            ),
        )
        publish(
            key,
            self.order_event(
                acct,
                spec,
                order,
                now,
                execution,
                last_qty=qty,
                last_price=price,
                commission=commission,
                trade_id=trade_id,
                maker=maker,
                realized=realized,
            ),
        )

    def _expire_reduce_only(self, acct: Account, spec: SymbolSpec, now: int, emit: bool) -> None:
        """A flat position leaves nothing to reduce: Binance expires resting reduce-only orders."""
        for o in [o for o in acct.open_orders.values() if o.symbol == spec.symbol and o.reduce_only]:
            self.finish(acct, spec, o, "EXPIRED", now, emit)

    def order_event(
        self, acct: Account, spec: SymbolSpec, order: Order, now: int, execution: str, **kw: Any
    ) -> Payload:
        """ORDER_TRADE_UPDATE for ``order`` with the account's current bid/ask notionals."""
        bid, ask = book_notional(acct, order.symbol)
        if kw.get("status") == "NEW":
            kw.update(executed=ZERO, cum_quote=ZERO)
        return payloads.order_update(
            order, spec, now=now, execution=execution, bid_notional=bid, ask_notional=ask, **kw
        )

    def publish(self, acct: Account, emit: bool, event: Payload) -> None:
        if emit:
            self.bus.publish_user(acct.api_key, event)

    # ----- matching as the price path moves -----
    def match(self, symbol: str, c: Candle, off0: int, off1: int, at_ms: int) -> None:
        """Fill (or expire) the resting orders of ``symbol`` the path crossed in [off0, off1] of ``c``."""
        book = self._resting.get(symbol)
        if not book:
            return
        lo, hi = self.market.path_range(symbol, c, off0, off1)
        spec = self.info.symbols[symbol]
        step = spec.step or Decimal(1)
        share = self.config.fill_liquidity * c.volume * Decimal(max(off1 - off0, 1)) / MINUTE_MS
        liquidity = max(share.quantize(step, rounding=ROUND_DOWN), step)
        for key, oid in list(book):
            acct = self.accounts[key]
            order = acct.open_orders.get(oid)
            if order is None:
                continue
            if order.good_till_date and at_ms >= order.good_till_date:
                self.finish(acct, spec, order, "EXPIRED", order.good_till_date, True)
                continue
            crossed = lo <= order.price if order.side == "BUY" else hi >= order.price
            if not crossed:
                continue
            qty = min(order.remaining, liquidity)
            if order.reduce_only:
                qty = min(qty, abs(acct.amount(symbol)))
                if qty <= 0:
                    self.finish(acct, spec, order, "EXPIRED", at_ms, True)
                    continue
            self.fill(acct, spec, order, qty, order.price, maker=True, now=at_ms, emit=True)
