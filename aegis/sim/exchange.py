"""The matching engine and accounts: order placement, cancels, fills, margin and user events.

One-way position mode, cross margin. MARKET orders and marketable LIMIT orders take at the
current price of the replayed path; resting LIMIT orders fill (maker, partially when large)
as the market loop walks the path through their price; conditional (algo) orders trigger
the same way. Every state change publishes Binance-shaped user events on the Bus.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, TypeVar

from aegis.sim import errors, filters, payloads
from aegis.sim.accounts import Account, AlgoOrder, Order, Trade
from aegis.sim.bus import Bus
from aegis.sim.candles import MINUTE_MS, Candle
from aegis.sim.clock import SimClock
from aegis.sim.config import SimConfig
from aegis.sim.market import Market
from aegis.sim.risk import Risk
from aegis.sim.symbols import ZERO, ExchangeInfo, SymbolSpec

Params = dict[str, str]
Payload = dict[str, Any]
_T = TypeVar("_T")

ORDER_ID_BASE = 8_389_765_739_703_625_592  # > 2**53, as real ids are: clients must not use floats
TRADE_ID_BASE = 5_612_428_004
ALGO_ID_BASE = 1_000_000_033_225_453
CONDITIONAL_TYPES = frozenset(
    {"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"}
)
ALGO_TYPES = frozenset({"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"})
TIFS = frozenset({"GTC", "IOC", "FOK", "GTX", "GTD"})
_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_BPS = Decimal("0.0001")
_RNG = random.Random()


def _bool(params: Params, name: str) -> bool:
    v = params.get(name)
    if v is None or v == "":
        return False
    low = v.lower()
    if low not in ("true", "false"):
        raise errors.invalid_param(name)
    return low == "true"



def _side_and_type(params: Params) -> tuple[str, str]:
    """``side`` and ``type`` of a new order or algo order, with Binance's codes when missing or bad."""
    side = params.get("side") or ""
    if not side:
        raise errors.mandatory("side")
    if side not in ("BUY", "SELL"):
        raise errors.bad(-1117, "Invalid side.")
    otype = params.get("type") or ""
    if not otype:
        raise errors.mandatory("type")
    return side, otype


def _lookup(
    params: Params, id_name: str, client_id_name: str, by_id: dict[int, _T], by_client_id: dict[str, int]
) -> _T | None:
    """An order (or algo order) named by its numeric id or else by its client id; None if unknown.

    -1102 on the id parameter when neither is sent or the id is not a number."""
    id_text, cid = params.get(id_name), params.get(client_id_name)
    if not id_text and not cid:
        raise errors.mandatory(id_name)
    if id_text:
        try:
            return by_id.get(int(id_text))
        except ValueError:
            raise errors.mandatory(id_name) from None
    found = by_client_id.get(cid or "")
    return by_id.get(found) if found is not None else None


def _int(params: Params, name: str) -> int | None:
    """An optional integer parameter; Binance's -1100 for anything but digits."""
    text = params.get(name)
    if text is None or text == "":
        return None
    if not text.lstrip("-").isdigit():
        raise errors.bad(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        )
    return int(text)


def _client_id(params: Params, name: str) -> str:
    cid = params.get(name)
    if cid is None or cid == "":
        return f"{_RNG.getrandbits(88):022x}"  # 22 characters, like Binance's generated ids
    if not _CLIENT_ID.match(cid):
        raise errors.bad(-4015, "Client order id is not valid.")
    return cid


@dataclass(frozen=True, slots=True)
class _Draft:
    """A parsed, not yet validated, new order."""

    side: str
    type: str
    tif: str
    qty: Decimal
    price: Decimal
    reduce_only: bool
    client_id: str
    resp_type: str

    @property
    def market(self) -> bool:
        return self.type == "MARKET"


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


class Exchange:
    """Accounts by API key, orders, matching and margin."""

    def __init__(
        self, config: SimConfig, clock: SimClock, bus: Bus, info: ExchangeInfo, market: Market
    ) -> None:
        self.config = config
        self.clock = clock
        self.bus = bus
        self.info = info
        self.market = market
        self.accounts: dict[str, Account] = {a.api_key: Account.from_spec(a) for a in config.accounts}
        self._order_ids = itertools.count(ORDER_ID_BASE)
        self._trade_ids = itertools.count(TRADE_ID_BASE)
        self._algo_ids = itertools.count(ALGO_ID_BASE)
        # symbol -> {(api_key, id)}: what the market loop must walk and match
        self._resting: dict[str, dict[tuple[str, int], None]] = {}
        self._algo_resting: dict[str, dict[tuple[str, int], None]] = {}
        self.risk = Risk(self)
        market.interest = self.resting_symbols
        market.on_path = self.on_path
        market.on_step = self.risk.funding

    # ----- lookups -----
    def account(self, api_key: str) -> Account:
        """The account for ``api_key``, or -2015 as Binance answers an unknown key."""
        acct = self.accounts.get(api_key)
        if acct is None:
            raise errors.bad_api_key()
        return acct

    def spec(self, symbol: str | None) -> SymbolSpec:
        if symbol is None or symbol == "":
            raise errors.mandatory("symbol")
        spec = self.info.symbols.get(symbol.upper())
        if spec is None:
            raise errors.invalid_symbol()
        return spec

    def resting_symbols(self) -> set[str]:
        """Symbols the market must walk: resting orders, untriggered algo orders, open positions
        (for liquidation)."""
        out = {s for s, d in self._resting.items() if d} | {s for s, d in self._algo_resting.items() if d}
        for acct in self.accounts.values():
            out.update(s for s, p in acct.positions.items() if p.amount)
        return out

    # ----- new order -----
    def new_order(self, api_key: str, params: Params, *, emit_events: bool = True) -> Payload:
        """POST /fapi/v1/order: validate as Binance does, place, match; ACK or RESULT body."""
        acct = self.account(api_key)
        spec = self.spec(params.get("symbol"))
        d = self._parse_order(spec, params)
        mark = self.market.price(spec.symbol)
        self._check_filters(spec, d, mark)
        if any(o.client_order_id == d.client_id for o in acct.open_orders.values()):
            raise errors.duplicate_client_order_id()
        pos = acct.amount(spec.symbol)
        if d.reduce_only and (pos == 0 or (pos > 0) == (d.side == "BUY")):
            raise errors.reduce_only_rejected()
        if self._open_count(acct, spec.symbol) >= spec.max_orders:
            raise errors.bad(-2025, "Reach max open order limit.")
        marketable = d.market or (d.price >= mark if d.side == "BUY" else d.price <= mark)
        if d.tif == "GTX" and marketable:
            raise errors.post_only_rejected()
        if not d.reduce_only:
            self._check_margin(acct, spec, d.side, d.qty, mark if marketable else d.price)
        if d.tif == "FOK" and not marketable:
            raise errors.fok_rejected()
        now = self.clock.now_ms()
        order = Order(
            order_id=next(self._order_ids),
            client_order_id=d.client_id,
            symbol=spec.symbol,
            side=d.side,
            type=d.type,
            orig_type=d.type,
            time_in_force=d.tif,
            orig_qty=d.qty,
            price=d.price,
            stop_price=ZERO,
            reduce_only=d.reduce_only,
            close_position=False,
            time=now,
            update_time=now,
            good_till_date=self._good_till(params, now) if d.tif == "GTD" else 0,
        )
        ack = payloads.order_rest(order, spec)
        self._place(acct, spec, order, mark if marketable else None, now, emit_events)
        return ack if d.resp_type == "ACK" else payloads.order_rest(order, spec)

    @staticmethod
    def _parse_order(spec: SymbolSpec, params: Params) -> _Draft:
        """Parameters of a new order, with Binance's codes for what is missing or malformed."""
        side, otype = _side_and_type(params)
        if spec.status != "TRADING":
            raise errors.bad(-1122, "Invalid symbol status.")
        if otype in CONDITIONAL_TYPES:
            raise errors.use_algo_endpoint()
        if otype not in ("LIMIT", "MARKET"):
            raise errors.bad(-1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH") not in ("BOTH", ""):
            raise errors.bad(-4061, "Order's position side does not match user's setting.")
        resp_type = params.get("newOrderRespType") or "ACK"
        if resp_type not in ("ACK", "RESULT"):
            raise errors.invalid_param("newOrderRespType")
        reduce_only = _bool(params, "reduceOnly")
        if _bool(params, "closePosition"):
            raise errors.not_required("closePosition")
        cid = _client_id(params, "newClientOrderId")
        market = otype == "MARKET"
        tif = "GTC"
        if not market:
            tif = params.get("timeInForce") or ""
            if not tif:
                raise errors.mandatory("timeInForce")
            if tif not in TIFS:
                raise errors.bad(-1115, "Invalid timeInForce.")
        qty = filters.parse_decimal("quantity", params.get("quantity"))
        if market and params.get("price"):
            raise errors.not_required("price")
        price = ZERO if market else filters.parse_decimal("price", params.get("price"))
        return _Draft(side, otype, tif, qty, price, reduce_only, cid, resp_type)

    def _check_filters(self, spec: SymbolSpec, d: _Draft, mark: Decimal) -> None:
        filters.check_quantity(spec, d.qty, market=d.market)
        if d.market:
            filters.check_market_percent_price(spec, d.side, self._taker_price(spec, d.side, mark), mark)
        else:
            filters.check_price(spec, d.price)
            filters.check_percent_price(spec, d.side, d.price, mark)
        filters.check_min_notional(spec, mark if d.market else d.price, d.qty, reduce_only=d.reduce_only)

    @staticmethod
    def _good_till(params: Params, now: int) -> int:
        """GTD: goodTillDate (ms, second precision) at least 600 s ahead, as Binance requires."""
        text = params.get("goodTillDate")
        if not text:
            raise errors.mandatory("goodTillDate")
        try:
            gtd = int(text)
        except ValueError:
            raise errors.mandatory("goodTillDate") from None
        if gtd <= now + 600_000:
            raise errors.invalid_param("goodTillDate")
        return gtd - gtd % 1000

    def _taker_price(self, spec: SymbolSpec, side: str, mark: Decimal) -> Decimal:
        """Current price made worse by the configured slippage, back on the tick grid."""
        if not self.config.slippage_bps:
            return mark
        factor = self.config.slippage_bps * _BPS
        raw = mark * (1 + factor) if side == "BUY" else mark * (1 - factor)
        tick = spec.tick or Decimal(1).scaleb(-spec.price_precision)
        rounding = "ROUND_CEILING" if side == "BUY" else "ROUND_FLOOR"
        return ((raw / tick).to_integral_value(rounding=rounding) * tick).quantize(tick)

    def _place(
        self, acct: Account, spec: SymbolSpec, order: Order, take_at: Decimal | None, now: int, emit: bool
    ) -> None:
        """Record the order; take immediately at ``take_at`` (current price) or rest on the book."""
        acct.orders[order.order_id] = order
        acct.client_ids[order.client_order_id] = order.order_id
        if take_at is None:
            if order.time_in_force == "IOC":
                self._publish(acct, emit, self._otu(acct, spec, order, now, "NEW", status="NEW"))
                self._finish(acct, spec, order, "EXPIRED", now, emit)
                return
            acct.open_orders[order.order_id] = order
            self._resting.setdefault(order.symbol, {})[(acct.api_key, order.order_id)] = None
            self.market.ensure(order.symbol)
            self._publish(acct, emit, self._otu(acct, spec, order, now, "NEW"))
            return
        fill_px = self._taker_price(spec, order.side, take_at)
        if order.type == "LIMIT":
            fill_px = min(fill_px, order.price) if order.side == "BUY" else max(fill_px, order.price)
        qty = order.orig_qty
        if order.reduce_only:
            qty = min(qty, abs(acct.amount(order.symbol)))
        new_event = self._otu(acct, spec, order, now, "NEW", status="NEW")
        acct.open_orders[order.order_id] = order  # briefly, so b/a notionals are right in events
        if qty > 0:
            self._fill(acct, spec, order, qty, fill_px, maker=False, now=now, emit=emit, new_event=new_event)
        else:
            self._publish(acct, emit, new_event)
        if order.is_open:
            self._finish(acct, spec, order, "EXPIRED", now, emit)

    def _finish(
        self, acct: Account, spec: SymbolSpec, order: Order, status: str, now: int, emit: bool
    ) -> None:
        """Take an order off the book as CANCELED or EXPIRED and say so."""
        order.status = status
        order.update_time = now
        self._unrest(acct, order)
        self._publish(acct, emit, self._otu(acct, spec, order, now, status))

    def _unrest(self, acct: Account, order: Order) -> None:
        acct.open_orders.pop(order.order_id, None)
        book = self._resting.get(order.symbol)
        if book is not None:
            book.pop((acct.api_key, order.order_id), None)

    # ----- fills -----
    def _fill(
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
        commission = (price * qty * fee_rate).quantize(Decimal("0.00000001"))
        asset = spec.margin_asset
        acct.balances[asset] = acct.balances.get(asset, ZERO) + realized - commission
        acct.balance_update_time[asset] = now
        order.executed_qty += qty
        order.cum_quote += price * qty
        order.update_time = now
        order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
        trade_id = next(self._trade_ids)
        acct.trades.append(
            Trade(
                trade_id,
                order.order_id,
                order.symbol,
                order.side,
                price,
                qty,
                realized,
                commission,
                asset,
                now,
                maker,
            )
        )
        if order.status == "FILLED":
            self._unrest(acct, order)
        if emit:
            self.bus.publish_user(
                acct.api_key,
                payloads.trade_lite(
                    order, spec, now=now, qty=qty, price=price, trade_id=trade_id, maker=maker
                ),
            )
            if new_event is not None:
                self.bus.publish_user(acct.api_key, new_event)
            mark = self.market.price(order.symbol, now)
            self.bus.publish_user(
                acct.api_key,
                payloads.account_update(
                    now=now,
                    asset=asset,
                    wallet=acct.balances[asset],
                    symbol=order.symbol,
                    amount=pos.amount,
                    entry=pos.entry_price,
                    break_even=self._break_even(pos.amount, pos.entry_price),
                    realized=pos.realized,
                    unrealized=pos.amount * (mark - pos.entry_price),
                ),
            )
            self.bus.publish_user(
                acct.api_key,
                self._otu(
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
        if pos.amount == 0:
            self._expire_reduce_only(acct, spec, now, emit)

    def _expire_reduce_only(self, acct: Account, spec: SymbolSpec, now: int, emit: bool) -> None:
        """A flat position leaves nothing to reduce: Binance expires resting reduce-only orders."""
        for o in [o for o in acct.open_orders.values() if o.symbol == spec.symbol and o.reduce_only]:
            self._finish(acct, spec, o, "EXPIRED", now, emit)

    def _break_even(self, amount: Decimal, entry: Decimal) -> Decimal:
        if not amount:
            return ZERO
        fee = self.config.taker_fee
        return entry * (1 + fee) if amount > 0 else entry * (1 - fee)

    def _otu(
        self, acct: Account, spec: SymbolSpec, order: Order, now: int, execution: str, **kw: Any
    ) -> Payload:
        bid, ask = self._book_notional(acct, order.symbol)
        if kw.get("status") == "NEW":
            kw.update(executed=ZERO, cum_quote=ZERO)
        return payloads.order_update(
            order, spec, now=now, execution=execution, bid_notional=bid, ask_notional=ask, **kw
        )

    def _book_notional(self, acct: Account, symbol: str) -> tuple[Decimal, Decimal]:
        bid = ask = ZERO
        for o in acct.open_orders.values():
            if o.symbol == symbol and o.type == "LIMIT":
                if o.side == "BUY":
                    bid += o.price * o.remaining
                else:
                    ask += o.price * o.remaining
        return bid, ask

    def _publish(self, acct: Account, emit: bool, event: Payload) -> None:
        if emit:
            self.bus.publish_user(acct.api_key, event)

    # ----- matching as the price path moves -----
    def on_path(self, symbol: str, c: Candle, off0: int, off1: int, at_ms: int) -> None:
        """The market walked ``symbol`` through [off0, off1] of bar ``c``: trigger, fill, liquidate."""
        if self._resting.get(symbol) or self._algo_resting.get(symbol):
            self._match(symbol, c, off0, off1, at_ms)
        if self.config.liquidation:
            self.risk.check(symbol, c, off0, off1, at_ms)

    def _match(self, symbol: str, c: Candle, off0: int, off1: int, at_ms: int) -> None:
        lo, hi = self.market.path_range(symbol, c, off0, off1)
        spec = self.info.symbols[symbol]
        for key, aid in list(self._algo_resting.get(symbol, {})):
            acct = self.accounts[key]
            algo = acct.algo_orders[aid]
            if algo.is_open and self._triggers(algo, lo, hi):
                self._trigger(acct, spec, algo, at_ms)
        book = self._resting.get(symbol)
        if not book:
            return
        step = spec.step or Decimal(1)
        share = self.config.fill_liquidity * c.volume * Decimal(max(off1 - off0, 1)) / MINUTE_MS
        liquidity = max(share.quantize(step, rounding=ROUND_DOWN), step)
        for key, oid in list(book):
            acct = self.accounts[key]
            order = acct.open_orders.get(oid)
            if order is None:
                continue
            if order.good_till_date and at_ms >= order.good_till_date:
                self._finish(acct, spec, order, "EXPIRED", order.good_till_date, True)
                continue
            crossed = lo <= order.price if order.side == "BUY" else hi >= order.price
            if not crossed:
                continue
            qty = min(order.remaining, liquidity)
            if order.reduce_only:
                qty = min(qty, abs(acct.amount(symbol)))
                if qty <= 0:
                    self._finish(acct, spec, order, "EXPIRED", at_ms, True)
                    continue
            self._fill(acct, spec, order, qty, order.price, maker=True, now=at_ms, emit=True)

    @staticmethod
    def _triggers(algo: AlgoOrder, lo: Decimal, hi: Decimal) -> bool:
        stop = algo.order_type in ("STOP", "STOP_MARKET")
        if (algo.side == "BUY") == stop:
            return hi >= algo.trigger_price
        return lo <= algo.trigger_price

    # ----- cancel / query -----
    def _find(self, acct: Account, params: Params, *, cancel: bool) -> tuple[SymbolSpec, Order]:
        spec = self.spec(params.get("symbol"))
        order = _lookup(params, "orderId", "origClientOrderId", acct.orders, acct.client_ids)
        if order is None or order.symbol != spec.symbol:
            raise errors.unknown_order_cancel() if cancel else errors.no_such_order()
        return spec, order

    def cancel_order(self, api_key: str, params: Params) -> Payload:
        """DELETE /fapi/v1/order; -2011 for an order that is unknown or no longer open."""
        acct = self.account(api_key)
        spec, order = self._find(acct, params, cancel=True)
        if not order.is_open:
            raise errors.unknown_order_cancel()
        self._finish(acct, spec, order, "CANCELED", self.clock.now_ms(), True)
        return payloads.order_rest(order, spec)

    def query_order(self, api_key: str, params: Params) -> Payload:
        acct = self.account(api_key)
        spec, order = self._find(acct, params, cancel=False)
        return payloads.order_rest(order, spec, query=True)

    def open_orders(self, api_key: str, symbol: str | None) -> list[Payload]:
        acct = self.account(api_key)
        sym = self.spec(symbol).symbol if symbol else None
        return [
            payloads.order_rest(o, self.info.symbols[o.symbol], query=True)
            for o in acct.open_orders.values()
            if sym is None or o.symbol == sym
        ]

    def cancel_all(self, api_key: str, symbol: str | None) -> Payload:
        acct = self.account(api_key)
        spec = self.spec(symbol)
        now = self.clock.now_ms()
        for o in [o for o in acct.open_orders.values() if o.symbol == spec.symbol]:
            self._finish(acct, spec, o, "CANCELED", now, True)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def user_trades(self, api_key: str, params: Params) -> list[Payload]:
        acct = self.account(api_key)
        spec = self.spec(params.get("symbol"))
        limit = min(_int(params, "limit") or 500, 1000)
        start, end = _int(params, "startTime"), _int(params, "endTime")
        from_id, order_id = _int(params, "fromId"), _int(params, "orderId")
        rows = [t for t in acct.trades if t.symbol == spec.symbol]
        if order_id is not None:
            rows = [t for t in rows if t.order_id == order_id]
        if from_id is not None:
            rows = [t for t in rows if t.trade_id >= from_id]
        if start is not None:
            rows = [t for t in rows if t.time >= start]
        if end is not None:
            rows = [t for t in rows if t.time <= end]
        rows = rows[:limit] if (from_id is not None or start is not None) else rows[-limit:]
        return [payloads.trade_rest(t, spec) for t in rows]

    # ----- margin -----
    def _open_count(self, acct: Account, symbol: str) -> int:
        n = sum(1 for o in acct.open_orders.values() if o.symbol == symbol)
        return n + sum(1 for a in acct.algo_orders.values() if a.is_open and a.symbol == symbol)

    def leverage_of(self, acct: Account, symbol: str) -> int:
        return acct.leverage.get(
            symbol, min(self.config.default_leverage, self.info.symbols[symbol].max_leverage)
        )

    def _order_margin(self, acct: Account, o: Order) -> Decimal:
        pos = acct.amount(o.symbol)
        reducing = abs(pos) if (pos > 0) != (o.side == "BUY") and pos else ZERO
        qty = max(ZERO, o.remaining - reducing)
        return qty * o.price / self.leverage_of(acct, o.symbol)

    def _check_margin(self, acct: Account, spec: SymbolSpec, side: str, qty: Decimal, price: Decimal) -> None:
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
        bid, ask = self._book_notional(acct, symbol)
        order_margin = sum(
            (self._order_margin(acct, o) for o in acct.open_orders.values() if o.symbol == symbol), ZERO
        )
        liq = ZERO
        if amount:
            wallet = acct.balances.get(spec.margin_asset, ZERO)
            liq = max(ZERO, entry - (wallet - maint) / amount)
        cap = max((b.cap for b in spec.brackets if b.leverage >= lev), default=spec.brackets[0].cap)
        return PositionView(
            symbol,
            amount,
            entry,
            self._break_even(amount, entry),
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
            cap,
            pos.update_time if pos else 0,
        )

    def active_symbols(self, acct: Account) -> list[str]:
        """Symbols with a position or open orders (what v3 account/positionRisk list)."""
        syms = {s for s, p in acct.positions.items() if p.amount}
        syms |= {o.symbol for o in acct.open_orders.values()}
        return sorted(syms)

    def asset_view(self, acct: Account, asset: str) -> AssetView:
        upnl = pm = om = mm = ZERO
        for sym in self.active_symbols(acct):
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

    # ----- leverage -----
    def set_leverage(self, api_key: str, params: Params) -> Payload:
        acct = self.account(api_key)
        spec = self.spec(params.get("symbol"))
        text = params.get("leverage")
        if not text:
            raise errors.mandatory("leverage")
        try:
            lev = int(text)
        except ValueError:
            raise errors.mandatory("leverage") from None
        if not 1 <= lev <= spec.max_leverage:
            raise errors.bad(-4028, f"Leverage {lev} is not valid")
        acct.leverage[spec.symbol] = lev
        now = self.clock.now_ms()
        self.bus.publish_user(api_key, payloads.leverage_update(now=now, symbol=spec.symbol, leverage=lev))
        cap = max(b.cap for b in spec.brackets if b.leverage >= lev)
        return {"leverage": lev, "maxNotionalValue": format(cap, "f"), "symbol": spec.symbol}

    # ----- algo (conditional) orders -----
    def new_algo_order(self, api_key: str, params: Params, *, emit_events: bool = True) -> Payload:
        """POST /fapi/v1/algoOrder (algoType=CONDITIONAL): STOP(_MARKET), TAKE_PROFIT(_MARKET)."""
        acct = self.account(api_key)
        algo_type = params.get("algoType")
        if not algo_type:
            raise errors.mandatory("algoType")
        if algo_type != "CONDITIONAL":
            raise errors.invalid_param("algoType")
        spec = self.spec(params.get("symbol"))
        side, otype = _side_and_type(params)
        if otype not in ALGO_TYPES:
            raise errors.bad(-1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH") not in ("BOTH", ""):
            raise errors.bad(-4061, "Order's position side does not match user's setting.")
        trigger = filters.parse_decimal("triggerPrice", params.get("triggerPrice"))
        filters.check_price(spec, trigger)
        close_position = _bool(params, "closePosition")
        reduce_only = _bool(params, "reduceOnly")
        is_market = otype.endswith("_MARKET")
        if close_position:
            if not is_market:
                raise errors.invalid_param("closePosition")
            if params.get("quantity"):
                raise errors.bad(-4137, "Quantity must be zero with closePosition equals true")
            if reduce_only:
                raise errors.not_required("reduceOnly")
            qty = ZERO
        else:
            qty = filters.parse_decimal("quantity", params.get("quantity"))
            filters.check_quantity(spec, qty, market=is_market)
        price = ZERO
        if not is_market:
            price = filters.parse_decimal("price", params.get("price"))
            filters.check_price(spec, price)
        tif = params.get("timeInForce") or "GTC"
        if tif not in TIFS:
            raise errors.bad(-1115, "Invalid timeInForce.")
        cid = _client_id(params, "clientAlgoId")
        if any(a.client_algo_id == cid for a in acct.open_algo()):
            raise errors.duplicate_client_order_id()
        if sum(1 for a in acct.open_algo() if a.symbol == spec.symbol) >= spec.max_algo_orders:
            raise errors.bad(-4045, "Reach max stop order limit.")
        if self._open_count(acct, spec.symbol) >= spec.max_orders:
            raise errors.bad(-2025, "Reach max open order limit.")
        mark = self.market.price(spec.symbol)
        now = self.clock.now_ms()
        algo = AlgoOrder(
            algo_id=next(self._algo_ids),
            client_algo_id=cid,
            symbol=spec.symbol,
            side=side,
            order_type=otype,
            time_in_force=tif,
            quantity=qty,
            trigger_price=trigger,
            price=price,
            working_type=params.get("workingType") or "CONTRACT_PRICE",
            close_position=close_position,
            reduce_only=reduce_only,
            price_protect=_bool(params, "priceProtect"),
            create_time=now,
            update_time=now,
        )
        if self._triggers(algo, mark, mark):
            raise errors.would_trigger()
        acct.algo_orders[algo.algo_id] = algo
        acct.client_algo_ids[cid] = algo.algo_id
        self._algo_resting.setdefault(spec.symbol, {})[(api_key, algo.algo_id)] = None
        self.market.ensure(spec.symbol)
        self._publish(acct, emit_events, payloads.algo_update(algo, spec, now=now))
        return payloads.algo_rest(algo, spec)

    def _find_algo(self, acct: Account, params: Params, *, cancel: bool) -> AlgoOrder:
        algo = _lookup(params, "algoId", "clientAlgoId", acct.algo_orders, acct.client_algo_ids)
        if algo is None:
            raise errors.unknown_order_cancel() if cancel else errors.no_such_order()
        return algo

    def cancel_algo_order(self, api_key: str, params: Params) -> Payload:
        acct = self.account(api_key)
        algo = self._find_algo(acct, params, cancel=True)
        if not algo.is_open:
            raise errors.unknown_order_cancel()
        self._end_algo(acct, algo, "CANCELED", self.clock.now_ms())
        return {"algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "code": "200", "msg": "success"}

    def _end_algo(self, acct: Account, algo: AlgoOrder, status: str, now: int) -> None:
        algo.status = status
        algo.update_time = now
        book = self._algo_resting.get(algo.symbol)
        if book is not None:
            book.pop((acct.api_key, algo.algo_id), None)
        self.bus.publish_user(
            acct.api_key, payloads.algo_update(algo, self.info.symbols[algo.symbol], now=now)
        )

    def query_algo_order(self, api_key: str, params: Params) -> Payload:
        acct = self.account(api_key)
        algo = self._find_algo(acct, params, cancel=False)
        return self._algo_body(acct, algo)

    def _algo_body(self, acct: Account, algo: AlgoOrder) -> Payload:
        spec = self.info.symbols[algo.symbol]
        order = acct.orders.get(algo.actual_order_id) if algo.actual_order_id else None
        if order is None:
            return payloads.algo_rest(algo, spec)
        return payloads.algo_rest(algo, spec, avg=order.avg_price)

    def open_algo_orders(self, api_key: str, symbol: str | None) -> list[Payload]:
        acct = self.account(api_key)
        sym = self.spec(symbol).symbol if symbol else None
        return [self._algo_body(acct, a) for a in acct.open_algo() if sym is None or a.symbol == sym]

    def cancel_all_algo(self, api_key: str, symbol: str | None) -> Payload:
        acct = self.account(api_key)
        spec = self.spec(symbol)
        now = self.clock.now_ms()
        for a in [a for a in acct.open_algo() if a.symbol == spec.symbol]:
            self._end_algo(acct, a, "CANCELED", now)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _trigger(self, acct: Account, spec: SymbolSpec, algo: AlgoOrder, now: int) -> None:
        """Trigger: ALGO_UPDATE TRIGGERING, TRIGGERED (with the order id), the order's events, FINISHED."""
        algo.status = "TRIGGERING"
        algo.trigger_time = now
        algo.update_time = now
        book = self._algo_resting.get(algo.symbol)
        if book is not None:
            book.pop((acct.api_key, algo.algo_id), None)
        self.bus.publish_user(acct.api_key, payloads.algo_update(algo, spec, now=now))
        pos = acct.amount(spec.symbol)
        reduce = algo.reduce_only or algo.close_position
        qty = abs(pos) if algo.close_position else algo.quantity
        if reduce and (pos == 0 or (pos > 0) == (algo.side == "BUY")):
            algo.status, algo.reject_reason = "EXPIRED", "Reduce Only reject"
            self.bus.publish_user(acct.api_key, payloads.algo_update(algo, spec, now=now))
            return
        is_market = algo.order_type.endswith("_MARKET")
        try:
            if not reduce:
                self._check_margin(acct, spec, algo.side, qty, algo.trigger_price)
        except errors.BinanceError:
            algo.status, algo.reject_reason = "REJECTED", "Margin is insufficient"
            self.bus.publish_user(acct.api_key, payloads.algo_update(algo, spec, now=now))
            return
        order = Order(
            order_id=next(self._order_ids),
            client_order_id=algo.client_algo_id,
            symbol=spec.symbol,
            side=algo.side,
            type="MARKET" if is_market else "LIMIT",
            orig_type=algo.order_type,
            time_in_force=algo.time_in_force,
            orig_qty=qty,
            price=algo.price,
            stop_price=algo.trigger_price,
            reduce_only=reduce,
            close_position=algo.close_position,
            time=now,
            update_time=now,
            working_type=algo.working_type,
        )
        algo.actual_order_id = order.order_id
        algo.status = "TRIGGERED"
        self.bus.publish_user(acct.api_key, payloads.algo_update(algo, spec, now=now))
        mark = self.market.price(spec.symbol, now)
        take = is_market or (algo.price >= mark if algo.side == "BUY" else algo.price <= mark)
        take_at = (algo.trigger_price if is_market else mark) if take else None
        self._place(acct, spec, order, take_at, now, True)
        algo.status = "FINISHED"
        algo.update_time = now
        self.bus.publish_user(
            acct.api_key,
            payloads.algo_update(algo, spec, now=now, avg=order.avg_price, executed=order.executed_qty),
        )
