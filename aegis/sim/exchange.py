"""The exchange: accounts by API key and the order endpoints, validated as Binance validates them.

A facade over its parts: ``params`` reads the request, ``filters`` checks it against the
symbol's filters, ``margin`` prices it, ``matching`` places and fills it, ``algo`` keeps the
conditional orders, ``funding`` and ``liquidation`` act on positions as the clock runs. One-way
position mode, cross margin.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aegis.sim import errors, filters, params, payloads
from aegis.sim.accounts import Account, Order
from aegis.sim.algo import AlgoBook
from aegis.sim.bus import Bus
from aegis.sim.candles import Candle
from aegis.sim.clock import SimClock
from aegis.sim.config import SimConfig
from aegis.sim.countdown import Countdowns
from aegis.sim.funding import Funding
from aegis.sim.income import IncomeLedger
from aegis.sim.lag import OrderLag, visible, visible_trade
from aegis.sim.liquidation import Liquidator
from aegis.sim.margin import Margin
from aegis.sim.market import Market
from aegis.sim.matching import Matcher
from aegis.sim.params import OrderDraft, Params
from aegis.sim.retention import Retention
from aegis.sim.symbols import ZERO, ExchangeInfo, SymbolSpec

Payload = dict[str, Any]
_CANCEL_ALL_DONE = {"code": 200, "msg": "The operation of cancel all open order is done."}


class Exchange:
    """Accounts by API key and every order and account-changing endpoint."""

    def __init__(
        self, config: SimConfig, clock: SimClock, bus: Bus, info: ExchangeInfo, market: Market
    ) -> None:
        self.config = config
        self.clock = clock
        self.bus = bus
        self.info = info
        self.market = market
        self.accounts: dict[str, Account] = {a.api_key: Account.from_spec(a) for a in config.accounts}
        self.ledger = IncomeLedger()
        now = clock.now_ms()
        for acct in self.accounts.values():  # how a real account is funded: a transfer from spot
            for asset, amount in acct.balances.items():
                self.ledger.book(acct, "TRANSFER", amount, asset, now)
        self.margin = Margin(config, info, market)
        self.matcher = Matcher(config, bus, info, market, self.margin, self.accounts, self.ledger)
        self.algos = AlgoBook(bus, info, market, self.margin, self.matcher, self.accounts)
        self.funding = Funding(config, info, market, bus, self.accounts, self.ledger, now)
        self.liquidator = Liquidator(info, market, bus, self.matcher, self.algos, self.accounts, self.ledger)
        self.lag = OrderLag(clock, bus)
        self.countdowns = Countdowns(clock, self._countdown_fired)
        market.interest = self.symbols_to_walk
        market.on_path = self.on_path
        self.retention = Retention(self.accounts)
        market.on_step = self._on_step

    def _on_step(self, now: int) -> None:
        self.funding.settle_due(now)
        self.retention.prune_due(now)

    # ----- lookups -----
    def account(self, api_key: str) -> Account:
        """The account for ``api_key``, or -2015 as Binance answers an unknown key."""
        acct = self.accounts.get(api_key)
        if acct is None:
            raise errors.bad_api_key()
        return acct

    def spec(self, symbol: str | None) -> SymbolSpec:
        """The instrument named exactly (symbols are upper case: ``btcusdt`` is -1121, the strict
        answer; Binance's own answer to a lower-case symbol on futures is UNCONFIRMED)."""
        if symbol is None or symbol == "":
            raise errors.mandatory("symbol")
        spec = self.info.symbols.get(symbol)
        if spec is None:
            raise errors.invalid_symbol()
        return spec

    def symbols_to_walk(self) -> set[str]:
        """Symbols the market must walk: resting orders, untriggered algo orders, open positions
        (for liquidation)."""
        out = self.matcher.resting_symbols() | self.algos.resting_symbols()
        for acct in self.accounts.values():
            out.update(s for s, p in acct.positions.items() if p.amount)
        return out

    def on_path(self, symbol: str, c: Candle, off0: int, off1: int, at_ms: int) -> None:
        """The market walked ``symbol`` through [off0, off1] of bar ``c``: trigger, fill, liquidate."""
        if self.algos.has_resting(symbol):
            lo, hi = self.market.path_range(symbol, c, off0, off1)
            self.algos.match(symbol, lo, hi, at_ms)
        self.matcher.match(symbol, c, off0, off1, at_ms)
        if self.config.liquidation:
            self.liquidator.check(symbol, c, off0, off1, at_ms)

    def open_count(self, acct: Account, symbol: str) -> int:
        """Open orders plus untriggered algo orders on ``symbol`` (MAX_NUM_ORDERS counts both)."""
        n = sum(1 for o in acct.open_orders.values() if o.symbol == symbol)
        return n + sum(1 for a in acct.open_algo() if a.symbol == symbol)

    # ----- new order -----
    def new_order(self, api_key: str, p: Params, *, emit_events: bool = True) -> Payload:
        """POST /fapi/v1/order: validate as Binance does, place, match; ACK or RESULT body."""
        acct = self.account(api_key)
        spec = self.spec(p.get("symbol"))
        d = params.new_order(p, trading=spec.status == "TRADING")
        mark = self.market.price(spec.symbol)
        self._check_filters(spec, d, mark)
        if any(o.client_order_id == d.client_id for o in acct.open_orders.values()):
            raise errors.duplicate_client_order_id()
        pos = acct.amount(spec.symbol)
        if d.reduce_only and (pos == 0 or (pos > 0) == (d.side == "BUY")):
            raise errors.reduce_only_rejected()
        if self.open_count(acct, spec.symbol) >= spec.max_orders:
            raise errors.bad(-2025, "Reach max open order limit.")
        marketable = d.market or (d.price >= mark if d.side == "BUY" else d.price <= mark)
        if d.tif == "GTX" and marketable:
            raise errors.post_only_rejected()
        if not d.reduce_only:
            self.margin.check(acct, spec, d.side, d.qty, mark if marketable else d.price)
        if d.tif == "FOK" and not marketable:
            raise errors.fok_rejected()
        now = self.clock.now_ms()
        order = Order(
            order_id=self.matcher.next_order_id(),
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
            good_till_date=params.good_till(p, now) if d.tif == "GTD" else 0,
        )
        ack = payloads.order_rest(order, spec)
        take_at = mark if marketable else None
        rule = self.lag.take(api_key)
        held: list[Payload] = []
        if rule is not None and rule.delay_events:
            with self.bus.diverted(api_key, held.append):
                self.matcher.place(acct, spec, order, take_at, now, emit_events)
        else:
            self.matcher.place(acct, spec, order, take_at, now, emit_events)
        if rule is not None:
            self.lag.hide(api_key, order, rule, now, held)
        return ack if d.resp_type == "ACK" else payloads.order_rest(order, spec)

    def _check_filters(self, spec: SymbolSpec, d: OrderDraft, mark: Decimal) -> None:
        filters.check_quantity(spec, d.qty, market=d.market)
        if d.market:
            # The best counterparty price a MARKET order meets is the fill model's price for it.
            taker = self.matcher.taker_price(spec, d.side, mark, d.qty, self.clock.now_ms())
            filters.check_market_percent_price(spec, d.side, taker, mark)
        else:
            filters.check_price(spec, d.price)
            filters.check_percent_price(spec, d.side, d.price, mark)
        filters.check_min_notional(spec, mark if d.market else d.price, d.qty, reduce_only=d.reduce_only)

    # ----- cancel / query -----
    def _find(self, acct: Account, p: Params, *, cancel: bool) -> tuple[SymbolSpec, Order]:
        spec = self.spec(p.get("symbol"))
        order = params.lookup(p, "orderId", "origClientOrderId", acct.orders, acct.client_ids)
        if order is None or order.symbol != spec.symbol:
            raise errors.unknown_order_cancel() if cancel else errors.no_such_order()
        return spec, order

    def cancel_order(self, api_key: str, p: Params) -> Payload:
        """DELETE /fapi/v1/order; -2011 for an order that is unknown or no longer open."""
        acct = self.account(api_key)
        spec, order = self._find(acct, p, cancel=True)
        if not order.is_open:
            raise errors.unknown_order_cancel()
        self.matcher.finish(acct, spec, order, "CANCELED", self.clock.now_ms(), True)
        return payloads.order_rest(order, spec)

    def query_order(self, api_key: str, p: Params) -> Payload:
        """GET /fapi/v1/order; -2013 also for an order still hidden by the query lag."""
        acct = self.account(api_key)
        spec, order = self._find(acct, p, cancel=False)
        if not visible(order, self.clock.now_ms()):
            raise errors.no_such_order()
        return payloads.order_rest(order, spec, query=True)

    def open_orders(self, api_key: str, symbol: str | None) -> list[Payload]:
        acct = self.account(api_key)
        sym = self.spec(symbol).symbol if symbol else None
        now = self.clock.now_ms()
        return [
            payloads.order_rest(o, self.info.symbols[o.symbol], query=True)
            for o in acct.open_orders.values()
            if (sym is None or o.symbol == sym) and visible(o, now)
        ]

    def all_orders(self, api_key: str, p: Params) -> list[Payload]:
        """GET /fapi/v1/allOrders: the symbol's most recent orders, oldest first."""
        acct = self.account(api_key)
        spec = self.spec(p.get("symbol"))
        now = self.clock.now_ms()
        rows = [o for o in acct.orders.values() if o.symbol == spec.symbol and visible(o, now)]
        return [payloads.order_rest(o, spec, query=True) for o in rows[-params.limit(p, 500, 1000) :]]

    def cancel_all(self, api_key: str, symbol: str | None) -> Payload:
        acct = self.account(api_key)
        spec = self.spec(symbol)
        self._cancel_open(acct, spec, self.clock.now_ms())
        return dict(_CANCEL_ALL_DONE)

    def _cancel_open(self, acct: Account, spec: SymbolSpec, now: int) -> None:
        for o in [o for o in acct.open_orders.values() if o.symbol == spec.symbol]:
            self.matcher.finish(acct, spec, o, "CANCELED", now, True)

    def countdown_cancel_all(self, api_key: str, p: Params) -> Payload:
        """POST /fapi/v1/countdownCancelAll (see countdown.py for what it cancels)."""
        self.account(api_key)
        spec = self.spec(p.get("symbol"))
        countdown = params.required_integer(p, "countdownTime")
        self.countdowns.set(api_key, spec.symbol, countdown)
        return {"symbol": spec.symbol, "countdownTime": str(countdown)}

    def _countdown_fired(self, api_key: str, symbol: str, at_ms: int) -> None:
        self._cancel_open(self.accounts[api_key], self.info.symbols[symbol], at_ms)

    def user_trades(self, api_key: str, p: Params) -> list[Payload]:
        acct = self.account(api_key)
        spec = self.spec(p.get("symbol"))
        limit = params.limit(p, 500, 1000)
        start, end = params.integer(p, "startTime"), params.integer(p, "endTime")
        from_id, order_id = params.integer(p, "fromId"), params.integer(p, "orderId")
        now = self.clock.now_ms()
        # (candidates hold every trade the filters below keep, in the same order)
        candidates = acct.trades_since(start) if order_id is None else acct.trades_by_order.get(order_id, [])
        rows = [t for t in candidates if t.symbol == spec.symbol and visible_trade(t, acct.orders, now)]
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

    def income_history(self, api_key: str, p: Params) -> list[Payload]:
        """GET /fapi/v1/income (income.py)."""
        acct = self.account(api_key)
        symbol = self.spec(p.get("symbol")).symbol if p.get("symbol") else None
        return self.ledger.query(acct, p, self.clock.now_ms(), symbol)

    # ----- leverage -----
    def set_leverage(self, api_key: str, p: Params) -> Payload:
        acct = self.account(api_key)
        spec = self.spec(p.get("symbol"))
        lev = params.required_integer(p, "leverage")
        if not 1 <= lev <= spec.max_leverage:
            raise errors.bad(-4028, f"Leverage {lev} is not valid")
        acct.leverage[spec.symbol] = lev
        now = self.clock.now_ms()
        self.bus.publish_user(api_key, payloads.leverage_update(now=now, symbol=spec.symbol, leverage=lev))
        cap = self.margin.max_notional(spec, lev)
        return {"leverage": lev, "maxNotionalValue": format(cap, "f"), "symbol": spec.symbol}

    # ----- algo (conditional) orders -----
    def new_algo_order(self, api_key: str, p: Params, *, emit_events: bool = True) -> Payload:
        """POST /fapi/v1/algoOrder (algoType=CONDITIONAL)."""
        acct = self.account(api_key)
        algo_type = p.get("algoType")
        if not algo_type:
            raise errors.mandatory("algoType")
        if algo_type != "CONDITIONAL":
            raise errors.invalid_param("algoType")
        spec = self.spec(p.get("symbol"))
        now = self.clock.now_ms()
        return self.algos.place(
            acct, spec, p, now=now, open_count=self.open_count(acct, spec.symbol), emit=emit_events
        )

    def cancel_algo_order(self, api_key: str, p: Params) -> Payload:
        acct = self.account(api_key)
        algo = self.algos.find(acct, p, cancel=True)
        if not algo.is_open:
            raise errors.unknown_order_cancel()
        self.algos.end(acct, algo, "CANCELED", self.clock.now_ms())
        return {"algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "code": "200", "msg": "success"}

    def query_algo_order(self, api_key: str, p: Params) -> Payload:
        acct = self.account(api_key)
        return self.algos.body(acct, self.algos.find(acct, p, cancel=False))

    def open_algo_orders(self, api_key: str, symbol: str | None) -> list[Payload]:
        acct = self.account(api_key)
        sym = self.spec(symbol).symbol if symbol else None
        return [self.algos.body(acct, a) for a in acct.open_algo() if sym is None or a.symbol == sym]

    def cancel_all_algo(self, api_key: str, symbol: str | None) -> Payload:
        acct = self.account(api_key)
        spec = self.spec(symbol)
        now = self.clock.now_ms()
        for a in [a for a in acct.open_algo() if a.symbol == spec.symbol]:
            self.algos.end(acct, a, "CANCELED", now)
        return dict(_CANCEL_ALL_DONE)
