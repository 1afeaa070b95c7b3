"""Conditional (algo) orders: POST/GET/DELETE /fapi/v1/algoOrder, their triggers and ALGO_UPDATE.

Since December 2025 Binance keeps STOP(_MARKET) and TAKE_PROFIT(_MARKET) orders in a separate
Algo Service: no margin check until the trigger; when the path reaches the trigger price the
algo order goes TRIGGERING, TRIGGERED (with the id of the normal order it placed), the order
reports through ORDER_TRADE_UPDATE, and the algo order ends FINISHED (or EXPIRED/REJECTED).
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from aegis.sim import errors, filters, params, payloads
from aegis.sim.accounts import Account, AlgoOrder, Order
from aegis.sim.bus import Bus, Payload
from aegis.sim.margin import Margin
from aegis.sim.market import Market
from aegis.sim.matching import Matcher
from aegis.sim.params import Params
from aegis.sim.symbols import ZERO, ExchangeInfo, SymbolSpec

ALGO_ID_BASE = 1_000_000_033_225_453


def triggers(algo: AlgoOrder, lo: Decimal, hi: Decimal) -> bool:
    """STOP BUY / TAKE_PROFIT SELL trigger at or above; STOP SELL / TAKE_PROFIT BUY at or below."""
    stop = algo.order_type in ("STOP", "STOP_MARKET")
    if (algo.side == "BUY") == stop:
        return hi >= algo.trigger_price
    return lo <= algo.trigger_price


class AlgoBook:
    """Every account's conditional orders and what the path does to them."""

    def __init__(
        self,
        bus: Bus,
        info: ExchangeInfo,
        market: Market,
        margin: Margin,
        matcher: Matcher,
        accounts: dict[str, Account],
    ) -> None:
        self.bus = bus
        self.info = info
        self.market = market
        self.margin = margin
        self.matcher = matcher
        self.accounts = accounts
        self._algo_ids = itertools.count(ALGO_ID_BASE)
        # symbol -> {(api_key, algo id)}: untriggered algo orders the market loop must watch
        self._resting: dict[str, dict[tuple[str, int], None]] = {}

    def resting_symbols(self) -> set[str]:
        return {s for s, book in self._resting.items() if book}

    def has_resting(self, symbol: str) -> bool:
        """``symbol in resting_symbols()`` without building the set (asked on every stretch of path)."""
        return bool(self._resting.get(symbol))

    def place(
        self, acct: Account, spec: SymbolSpec, p: Params, *, now: int, open_count: int, emit: bool
    ) -> Payload:
        """POST /fapi/v1/algoOrder (algoType=CONDITIONAL): STOP(_MARKET), TAKE_PROFIT(_MARKET)."""
        side, otype = params.side_and_type(p)
        if otype not in params.ALGO_TYPES:
            raise errors.bad(-1116, "Invalid orderType.")
        params.one_way(p)
        trigger = params.decimal(p, "triggerPrice")
        filters.check_price(spec, trigger)
        close_position = params.boolean(p, "closePosition")
        reduce_only = params.boolean(p, "reduceOnly")
        is_market = otype.endswith("_MARKET")
        if close_position:
            if not is_market:
                raise errors.invalid_param("closePosition")
            if p.get("quantity"):
                raise errors.bad(-4137, "Quantity must be zero with closePosition equals true")
            if reduce_only:
                raise errors.not_required("reduceOnly")
            qty = ZERO
        else:
            qty = params.decimal(p, "quantity")
            filters.check_quantity(spec, qty, market=is_market)
        price = ZERO
        if not is_market:
            price = params.decimal(p, "price")
            filters.check_price(spec, price)
        tif = p.get("timeInForce") or "GTC"
        if tif not in params.TIFS:
            raise errors.bad(-1115, "Invalid timeInForce.")
        cid = params.client_id(p, "clientAlgoId")
        if any(a.client_algo_id == cid for a in acct.open_algo()):
            raise errors.duplicate_client_order_id()
        if sum(1 for a in acct.open_algo() if a.symbol == spec.symbol) >= spec.max_algo_orders:
            raise errors.bad(-4045, "Reach max stop order limit.")
        if open_count >= spec.max_orders:
            raise errors.bad(-2025, "Reach max open order limit.")
        mark = self.market.price(spec.symbol)
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
            working_type=p.get("workingType") or "CONTRACT_PRICE",
            close_position=close_position,
            reduce_only=reduce_only,
            price_protect=params.boolean(p, "priceProtect"),
            create_time=now,
            update_time=now,
        )
        if triggers(algo, mark, mark):
            raise errors.would_trigger()
        acct.algo_orders[algo.algo_id] = algo
        acct.open_algos[algo.algo_id] = algo
        acct.client_algo_ids[cid] = algo.algo_id
        self._resting.setdefault(spec.symbol, {})[(acct.api_key, algo.algo_id)] = None
        self.market.ensure(spec.symbol)
        if emit:
            self.bus.publish_user(acct.api_key, payloads.algo_update(algo, spec, now=now))
        return payloads.algo_rest(algo, spec)

    def find(self, acct: Account, p: Params, *, cancel: bool) -> AlgoOrder:
        algo = params.lookup(p, "algoId", "clientAlgoId", acct.algo_orders, acct.client_algo_ids)
        if algo is None:
            raise errors.unknown_order_cancel() if cancel else errors.no_such_order()
        return algo

    def end(self, acct: Account, algo: AlgoOrder, status: str, now: int) -> None:
        """Take an untriggered algo order off the watch list as CANCELED/EXPIRED and say so."""
        algo.status = status
        algo.update_time = now
        self._unrest(acct, algo)
        self.bus.publish_user(acct.api_key, payloads.algo_update(algo, self.info.symbols[algo.symbol], now=now))

    def _unrest(self, acct: Account, algo: AlgoOrder) -> None:
        """Called wherever an algo order leaves NEW (end, trigger)."""
        acct.open_algos.pop(algo.algo_id, None)
        book = self._resting.get(algo.symbol)
        if book is not None:
            book.pop((acct.api_key, algo.algo_id), None)

    def body(self, acct: Account, algo: AlgoOrder) -> Payload:
        """The REST object, with the triggered order's average price once there is one."""
        spec = self.info.symbols[algo.symbol]
        order = acct.orders.get(algo.actual_order_id) if algo.actual_order_id else None
        if order is None:
            return payloads.algo_rest(algo, spec)
        return payloads.algo_rest(algo, spec, avg=order.avg_price)

    # ----- triggers as the price path moves -----
    def match(self, symbol: str, lo: Decimal, hi: Decimal, at_ms: int) -> None:
        """Trigger the algo orders of ``symbol`` whose trigger price lies in [lo, hi]."""
        book = self._resting.get(symbol)
        if not book:
            return
        spec = self.info.symbols[symbol]
        for key, aid in list(book):
            acct = self.accounts[key]
            algo = acct.algo_orders[aid]
            if algo.is_open and triggers(algo, lo, hi):
                self._trigger(acct, spec, algo, at_ms)

    def _trigger(self, acct: Account, spec: SymbolSpec, algo: AlgoOrder, now: int) -> None:
        """Trigger: ALGO_UPDATE TRIGGERING, TRIGGERED (with the order id), the order's events, FINISHED."""
        publish = self.bus.publish_user
        algo.status = "TRIGGERING"
        algo.trigger_time = now
        algo.update_time = now
        self._unrest(acct, algo)
        publish(acct.api_key, payloads.algo_update(algo, spec, now=now))
        pos = acct.amount(spec.symbol)
        reduce = algo.reduce_only or algo.close_position
        qty = abs(pos) if algo.close_position else algo.quantity
        if reduce and (pos == 0 or (pos > 0) == (algo.side == "BUY")):
            algo.status, algo.reject_reason = "EXPIRED", "Reduce Only reject"
            publish(acct.api_key, payloads.algo_update(algo, spec, now=now))
            return
        is_market = algo.order_type.endswith("_MARKET")
        try:
            if not reduce:
                self.margin.check(acct, spec, algo.side, qty, algo.trigger_price)
        except errors.BinanceError:
            algo.status, algo.reject_reason = "REJECTED", "Margin is insufficient"
            publish(acct.api_key, payloads.algo_update(algo, spec, now=now))
            return
        order = Order(
            order_id=self.matcher.next_order_id(),
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
        publish(acct.api_key, payloads.algo_update(algo, spec, now=now))
        mark = self.market.price(spec.symbol, now)
        take = is_market or (algo.price >= mark if algo.side == "BUY" else algo.price <= mark)
        take_at = (algo.trigger_price if is_market else mark) if take else None
        self.matcher.place(acct, spec, order, take_at, now, True)
        algo.status = "FINISHED"
        algo.update_time = now
        publish(
            acct.api_key,
            payloads.algo_update(algo, spec, now=now, avg=order.avg_price, executed=order.executed_qty),
        )
