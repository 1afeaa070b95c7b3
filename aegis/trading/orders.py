"""The order manager: every order sent exactly once, none forgotten, even across a crash.

For each intent: check it, derive its client order id from the intent (``clientid``), size it
against the symbol's filters (``sizing``), pass the risk gate (``risk``), write it to the journal
(durable before the request leaves), send it, and learn its fate:

* accepted: the acknowledgement goes through the state store's forward-only rule (a fill that
  arrived first on the user stream is never undone);
* rejected (-2019 margin, -4164 notional...): reported with Binance's code and message, never
  retried; a filter rejection refreshes the filters for the next intent;
* retryable (not sent, 5xx "Service Unavailable", -1008, 429): sent again after backoff with the
  same client id;
* outcome unknown (timeout after sending, 503 "Unknown error", -1007): looked for by client id
  over a window (``resolve``); sent again with the same id only once every look said it is not
  there; -4116 on that re-send proves the first one landed.

On start-up, before any new order, every intent the journal holds in flight is resolved against the
exchange by its client id: found ones are adopted, absent ones abandoned (their moment has passed).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

import msgspec
from loguru import logger

from aegis.backoff import backoff_delay
from aegis.binance.errors import (
    ClockSkew,
    ExchangeError,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Retryable,
)
from aegis.clock import TimeSource
from aegis.config import OrderSettings
from aegis.domain import ZERO, AlgoOrder, Order, OrderRequest, OrderType, Side, TimeInForce
from aegis.reconcile.requests import ReconcileRequests
from aegis.state import StateStore
from aegis.trading.clientid import client_id, is_ours
from aegis.trading.filters import FILTER_CODES, FilterBook
from aegis.trading.intents import Intent, Outcome, Submission
from aegis.trading.journal import EventRow, IntentRecord, Journal, close_detail
from aegis.trading.resolve import FateKind, OrderLookup, find_order
from aegis.trading.risk import RiskGate
from aegis.trading.sizing import MinNotionalPolicy, Refusal, SizedOrder, SizingRequest, size

__all__ = ["OrderApi", "OrderManager"]

Prices = Callable[[str], Decimal | None]
DUPLICATE_CLIENT_ID = -4116
REDUCE_ONLY_REJECTED = -2022
# Rejections of closing orders that are races with the market, not mistakes: the engine checked
# against its view and the exchange's moved on (a stop fired, the mark crossed a trigger). Their
# callers handle them (a reconcile pass; closing at the market), so they are warnings.
_RACES = {
    REDUCE_ONLY_REJECTED: "nothing left to reduce (a stop that fired on the exchange raced this exit)",
    -2021: "the mark passed the trigger since the engine checked it",
}


class OrderApi(OrderLookup, Protocol):
    """What the order manager sends (``aegis.binance.BinanceRest`` has it)."""

    async def place_order(self, request: OrderRequest) -> Order: ...

    async def place_algo_order(self, request: OrderRequest, *, working_type: str | None = None) -> AlgoOrder: ...

    async def cancel_order(self, symbol: str, *, client_order_id: str | None = None, order_id: int | None = None) -> Order: ...

    async def cancel_algo_order(self, *, client_algo_id: str | None = None, algo_id: int | None = None) -> int: ...


class OrderManager:
    def __init__(
        self,
        rest: OrderApi,
        state: StateStore,
        journal: Journal,
        filters: FilterBook,
        risk: RiskGate,
        clock: TimeSource,
        prices: Prices,
        settings: OrderSettings,
        *,
        dry_run: bool = False,
        reconcile: ReconcileRequests | None = None,
    ) -> None:
        self._rest = rest
        self._state = state
        self._journal = journal
        self._filters = filters
        self.risk = risk
        self._clock = clock
        self._prices = prices
        self.settings = settings
        self.dry_run = dry_run
        self._reconcile = reconcile
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # one sender per client id at a time
        self.outcomes: Counter[str] = Counter()
        self.rejections: Counter[int] = Counter()  # by Binance code
        self.refusals: Counter[str] = Counter()  # by filter or limit
        self.unknown: Counter[str] = Counter()  # how unknown outcomes were resolved
        self.retries = 0
        self.last_submit_ms: int | None = None
        self._filled_ms: dict[str, int] = {}  # per symbol: exchange time of our newest fill a REST answer showed

    # --- intents -----------------------------------------------------------------------------

    async def submit(self, intent: Intent) -> Submission:
        """Turn an intent into its order, exactly once (see the module docstring)."""
        self.last_submit_ms = self._clock.now_ms()
        sub = await self._submit(intent)
        self.outcomes[sub.outcome] += 1
        if sub.outcome in (Outcome.REFUSED, Outcome.REJECTED, Outcome.FAILED):
            logger.warning("{} {} {}: {} ({})", intent.strategy, intent.symbol, intent.cause, sub.outcome, sub.reason)
        return sub

    async def _submit(self, intent: Intent) -> Submission:
        cid = client_id(intent.strategy, intent.symbol, intent.cause, "entry")
        problems = intent.problems()
        if problems:
            return self._refused(cid, "REQUEST", "; ".join(problems))
        behind = self._position_behind(intent.symbol)
        if behind is not None:
            return self._refused(cid, "POSITION", behind)
        leg = self._leg(intent)
        if leg is None:
            return Submission(cid, Outcome.NOTHING, reason="the position is already at its target")
        side, quantity, reduce_only = leg
        filters = self._filters.get(intent.symbol)
        mark = self._prices(intent.symbol)
        if filters is None or mark is None:
            return self._refused(cid, "REQUEST", f"no {'filters' if filters is None else 'price'} for {intent.symbol} yet")
        request = SizingRequest(
            intent.symbol, side, intent.type,
            quantity=quantity, notional=intent.notional if intent.target_position is None else None,
            price=intent.price, reduce_only=reduce_only,
        )  # fmt: skip
        sized = size(
            request,
            filters,
            mark,
            min_notional=MinNotionalPolicy(self.settings.min_notional_policy),
            max_notional=self.risk.settings.max_order_notional or None,
        )
        if isinstance(sized, Refusal):
            self.refusals[sized.filter] += 1
            return Submission(cid, Outcome.REFUSED, reason=f"{sized.filter}: {sized.reason}", code=sized.code)
        assert sized.quantity is not None
        refusal = self.risk.check(intent.symbol, side, sized.quantity, sized.price or mark, reduce_only=sized.reduce_only)
        if refusal is not None:
            self.refusals[refusal.limit] += 1
            return Submission(cid, Outcome.REFUSED, reason=f"{refusal.limit}: {refusal.reason}")
        order = _order_request(cid, sized, intent)
        return await self.send(order, strategy=intent.strategy, leg="entry")

    def _leg(self, intent: Intent) -> tuple[Side, Decimal | None, bool] | None:
        """Side, quantity (None: sized from notional) and reduce-only of the order an intent needs."""
        if intent.target_position is None:
            assert intent.side is not None
            return intent.side, intent.quantity, intent.reduce_only
        position = self._state.position(intent.symbol)
        current = position.amount if position is not None else ZERO
        pending = sum(
            (o.side.sign * (o.orig_qty - o.executed_qty) for o in self._state.open_orders(intent.symbol)
             if is_ours(o.client_order_id) and not o.reduce_only),
            ZERO,
        )  # fmt: skip
        delta = intent.target_position - current - pending
        if delta == 0:
            return None
        side = Side.BUY if delta > 0 else Side.SELL
        reducing = abs(intent.target_position) < abs(current) and intent.target_position * current >= 0
        return side, abs(delta), reducing

    def _position_behind(self, symbol: str) -> str | None:
        """Why the stored position cannot be trusted yet: an order of ours filled (its REST answer
        said so) and no account update or snapshot since shows it (a silent user stream). Acting on
        it would re-enter a position or close one twice; a reconciliation is asked for instead."""
        filled_ms = self._filled_ms.get(symbol, 0)
        if not filled_ms or self._state.position_covers(symbol, filled_ms):
            return None
        if self._reconcile is not None:
            self._reconcile.request("orders", f"the position of {symbol} does not show our fill at {filled_ms}")
        return f"the position of {symbol} does not show our fill at {filled_ms} yet"

    def _refused(self, cid: str, what: str, reason: str) -> Submission:
        self.refusals[what] += 1
        return Submission(cid, Outcome.REFUSED, reason=reason)

    # --- sending exactly once ---------------------------------------------------------------

    async def send(
        self, order: OrderRequest, *, strategy: str, leg: str, algo: bool = False, working_type: str | None = None
    ) -> Submission:
        """Journal ``order`` (sized already), then send it once and learn its fate."""
        cid = order.client_order_id
        lock, users = self._locks.get(cid) or (asyncio.Lock(), 0)
        self._locks[cid] = (lock, users + 1)
        try:
            async with lock:
                return await self._send_locked(order, strategy, leg, algo, working_type)
        finally:
            lock, users = self._locks[cid]
            if users <= 1:
                del self._locks[cid]
            else:
                self._locks[cid] = (lock, users - 1)

    async def _send_locked(
        self, order: OrderRequest, strategy: str, leg: str, algo: bool, working_type: str | None
    ) -> Submission:
        cid = order.client_order_id
        record = IntentRecord(cid, self._clock.now_ms(), strategy, order.symbol, leg, algo, _wire(order))
        if not await self._journal.record_intent(record):
            known = self._state.order(cid)
            return Submission(cid, Outcome.DUPLICATE, order=known, reason="journaled before: not sent again")
        if self.dry_run:
            await self._journal.record_event(cid, "dry", self._clock.now_ms(), record.request)
            logger.info("dry run: would send {} {}", cid, record.request)
            return Submission(cid, Outcome.DRY)
        attempts = 0
        while True:
            sent_ms = self._clock.now_ms()
            try:
                self.risk.record_order()
                placed = await self._place(order, algo, working_type)
            except Rejected as exc:
                if exc.code == DUPLICATE_CLIENT_ID:
                    return await self._landed_before(order, algo, sent_ms, exc)
                return await self._rejected(order, exc)
            except (Retryable, RateLimited, ClockSkew) as exc:  # not executed: the same id again
                attempts += 1
                if attempts > self.settings.max_retries:
                    await self._journal.record_event(cid, "abandoned", self._clock.now_ms(), {"error": str(exc)})
                    return Submission(cid, Outcome.FAILED, reason=f"gave up after {attempts} attempts: {exc}")
                self.retries += 1
                delay = backoff_delay(attempts, 0.5, 10.0)
                logger.warning("{}: {}; sending again with the same id in {:.1f} s", cid, exc, delay)
                await self._clock.sleep(delay)
                continue
            except OutcomeUnknown as exc:
                outcome = await self._unknown(order, algo, sent_ms, exc)
                if outcome is not None:
                    return outcome
                attempts += 1
                if attempts > self.settings.max_retries:
                    await self._journal.record_event(cid, "abandoned", self._clock.now_ms(), {"error": str(exc)})
                    return Submission(cid, Outcome.FAILED, reason=f"gave up after {attempts} attempts: {exc}")
                continue  # confirmed absent: the same id goes out again
            return await self._accepted(order, placed)

    async def _place(self, order: OrderRequest, algo: bool, working_type: str | None) -> Order | AlgoOrder:
        if algo:
            return await self._rest.place_algo_order(order, working_type=working_type)
        return await self._rest.place_order(order)

    async def _accepted(self, order: OrderRequest, placed: Order | AlgoOrder) -> Submission:
        cid = order.client_order_id
        now = self._clock.now_ms()
        if isinstance(placed, AlgoOrder):
            await self._state.apply_algo(placed, at_ms=now)
            await self._journal.record_event(cid, "acked", now, {"algo_id": placed.algo_id, "status": placed.status})
            return Submission(cid, Outcome.PLACED)
        await self._state.apply_order(placed, at_ms=now)
        if placed.executed_qty > 0:
            self._filled_ms[placed.symbol] = max(self._filled_ms.get(placed.symbol, 0), placed.update_time_ms)
        events: list[EventRow] = [("acked", now, {"order_id": placed.order_id, "status": placed.status})]
        if not placed.status.is_open:  # a final answer (IOC expired, MARKET filled): one commit for both
            events.append(("closed", now, close_detail(placed)))  # the ledger's copy of it is then no write
        await self._journal.record_events(cid, events)
        return Submission(cid, Outcome.PLACED, order=self._state.order(cid) or placed)

    async def _rejected(self, order: OrderRequest, exc: Rejected) -> Submission:
        cid = order.client_order_id
        code = exc.code if exc.code is not None else 0
        self.rejections[code] += 1
        if exc.code == REDUCE_ONLY_REJECTED and self._reconcile is not None:  # no position to reduce
            self._reconcile.request("orders", f"{cid} reduce-only rejected: the position is not what the engine holds")
        await self._journal.record_event(cid, "rejected", self._clock.now_ms(), {"code": exc.code, "msg": exc.message})
        race = _RACES.get(code) if order.reduce_only or order.close_position else None
        if race is not None:  # the market moved between our check and the exchange's; the caller copes
            logger.warning("order {} {} {}: {} (code {} {})", cid, order.symbol, order.side, race, exc.code, exc.message)
        else:
            logger.error("order {} {} {} rejected by the exchange: code {} {}", cid, order.symbol, order.side,
                         exc.code, exc.message)  # fmt: skip
        if exc.code in FILTER_CODES:
            try:
                await self._filters.refresh(f"{order.symbol} rejected with {exc.code}")
            except ExchangeError as refresh_error:
                logger.warning("filters could not be refreshed: {}", refresh_error)
        return Submission(cid, Outcome.REJECTED, reason=f"code {exc.code}: {exc.message}", code=exc.code)

    async def _unknown(self, order: OrderRequest, algo: bool, sent_ms: int, exc: OutcomeUnknown) -> Submission | None:
        """The answer was lost: find out. Returns the submission, or None to send the same id again."""
        cid = order.client_order_id
        await self._journal.record_event(cid, "unknown", self._clock.now_ms(), {"error": str(exc)})
        logger.warning("{}: outcome unknown ({}); looking for it before anything is sent again", cid, exc)
        if self._reconcile is not None:  # something may have happened that the engine does not know
            self._reconcile.request("orders", f"outcome of {cid} unknown")
        fate = await find_order(
            self._rest, self._state, order.symbol, cid, algo=algo, sent_ms=sent_ms,
            window_s=self.settings.unknown_outcome_window_s, poll_s=self.settings.unknown_outcome_poll_s, clock=self._clock,
        )  # fmt: skip
        self.unknown[fate.kind] += 1
        if fate.kind is FateKind.FOUND:
            logger.info("{}: it landed (found after {} look(s))", cid, fate.looks)
            return await self._accepted(order, fate.order or fate.algo)  # type: ignore[arg-type]
        if fate.kind is FateKind.ABSENT:
            await self._journal.record_event(cid, "absent", self._clock.now_ms(), {"looks": fate.looks})
            logger.warning("{}: not on the exchange after {} looks; sending it again with the same id", cid, fate.looks)
            return None
        if self._reconcile is not None:
            self._reconcile.request("orders", f"outcome of {cid} unknown and the exchange cannot be asked")
        return Submission(cid, Outcome.FAILED, reason=f"outcome unknown and the exchange cannot be asked: {exc}")

    async def _landed_before(self, order: OrderRequest, algo: bool, sent_ms: int, exc: Rejected) -> Submission:
        """-4116: an earlier attempt with this id landed; adopt it (it may still be invisible to queries)."""
        cid = order.client_order_id
        self.unknown["duplicate"] += 1
        fate = await find_order(
            self._rest, self._state, order.symbol, cid, algo=algo, sent_ms=sent_ms - 60_000,
            window_s=self.settings.unknown_outcome_window_s, poll_s=self.settings.unknown_outcome_poll_s, clock=self._clock,
        )  # fmt: skip
        if fate.kind is FateKind.FOUND:
            return await self._accepted(order, fate.order or fate.algo)  # type: ignore[arg-type]
        await self._journal.record_event(cid, "acked", self._clock.now_ms(), {"unseen": True, "error": str(exc)})
        if self._reconcile is not None:
            self._reconcile.request("orders", f"{cid} exists (-4116) but no query shows it yet")
        return Submission(cid, Outcome.PLACED, reason="the exchange has it (-4116); not visible to queries yet")

    # --- cancel and replace -----------------------------------------------------------------

    async def cancel(self, cid: str, symbol: str, *, algo: bool = False) -> bool:
        """Cancel one order by client id; True if it was open and is now cancelled."""
        now = self._clock.now_ms()
        await self._journal.record_event(cid, "cancel_requested", now)
        try:
            if algo:
                await self._rest.cancel_algo_order(client_algo_id=cid)
                known = self._state.algo_order(cid)
                if known is not None:
                    cancelled = msgspec.structs.replace(known, status="CANCELED", update_time_ms=now)
                    await self._state.apply_algo(cancelled, at_ms=now)
            else:
                answer = await self._rest.cancel_order(symbol, client_order_id=cid)
                await self._state.apply_order(answer, at_ms=now)
        except OrderNotFound:
            logger.info("cancel {}: not open on the exchange (already filled, cancelled or never placed)", cid)
            return False
        await self._journal.record_close(cid, self._clock.now_ms(), {"status": "CANCELED"} if algo else close_detail(answer))
        return True

    async def cancel_all(self, symbol: str, *, entries_only: bool = True) -> int:
        """Cancel our open orders of ``symbol`` (entries only by default: protective stops stay)."""
        count = 0
        for order in self._state.open_orders(symbol):
            if is_ours(order.client_order_id) and not (entries_only and order.reduce_only):
                count += await self.cancel(order.client_order_id, symbol)
        if not entries_only:
            for algo in self._state.open_algo_orders(symbol):
                if is_ours(algo.client_algo_id):
                    count += await self.cancel(algo.client_algo_id, symbol, algo=True)
        return count

    async def replace(self, cid: str, *, price: Decimal | None = None, quantity: Decimal | None = None) -> Submission:
        """Amend by replace: cancel the resting order, then send its remainder at the new price/quantity."""
        known = self._state.order(cid)
        if known is None or not known.status.is_open:
            return Submission(cid, Outcome.REFUSED, reason="not an open order of ours")
        if not await self.cancel(cid, known.symbol):
            return Submission(cid, Outcome.REFUSED, reason="it closed before it could be replaced")
        left = self._state.order(cid)
        remaining = (left.orig_qty - left.executed_qty) if left is not None else known.orig_qty
        new_cid = _next_id(cid)
        order = OrderRequest(
            known.symbol, known.side, known.type, quantity if quantity is not None else remaining, new_cid,
            price=price if price is not None else known.price, time_in_force=known.time_in_force,
            reduce_only=known.reduce_only,
        )  # fmt: skip
        return await self.send(order, strategy="replace", leg="replace")

    # --- start-up ------------------------------------------------------------------------------

    async def recover(self) -> Counter[str]:
        """Resolve every intent the journal holds in flight, before any new order (see docstring)."""
        pending = await self._journal.in_flight()
        if pending:
            logger.info("resolving {} order(s) the journal has in flight", len(pending))
        results = await asyncio.gather(*(self._recover_one(record) for record in pending))
        summary: Counter[str] = Counter(results)
        if pending:
            logger.info("in-flight orders resolved: {}", dict(summary))
        return summary

    async def _recover_one(self, record: IntentRecord) -> str:
        fate = await find_order(
            self._rest, self._state, record.symbol, record.client_id, algo=record.algo, sent_ms=record.created_ms,
            window_s=self.settings.unknown_outcome_window_s, poll_s=self.settings.unknown_outcome_poll_s, clock=self._clock,
        )  # fmt: skip
        now = self._clock.now_ms()
        if fate.kind is FateKind.FOUND:
            if fate.algo is not None:
                await self._state.apply_algo(fate.algo, at_ms=now)
                closed = fate.algo.status not in ("NEW", "TRIGGERING")
            else:
                assert fate.order is not None
                await self._state.apply_order(fate.order, at_ms=now)
                await self._recover_fills(record.client_id, fate.order)
                closed = not fate.order.status.is_open
            events: list[EventRow] = [("acked", now, {"recovered": True})]
            if closed:
                events.append(("closed", now, {"recovered": True, **(close_detail(fate.order) if fate.order else {})}))
            await self._journal.record_events(record.client_id, events)
            return "found"
        if fate.kind is FateKind.ABSENT:
            await self._journal.record_event(record.client_id, "abandoned", now, {"reason": "never reached the exchange"})
            return "abandoned"
        return "unknown"


    async def _recover_fills(self, cid: str, order: Order) -> None:
        """The trades of an order found after a crash: its fill events went to a dead process, so
        they come from userTrades (weight 5) into the store and from there to the journal."""
        if order.executed_qty <= 0:
            return
        for fill in await self._rest.user_trades(order.symbol, order_id=order.order_id):
            await self._state.record_fill(msgspec.structs.replace(fill, client_order_id=cid))


def _order_request(cid: str, sized: SizedOrder, intent: Intent) -> OrderRequest:
    tif = intent.time_in_force
    if sized.type is OrderType.LIMIT and tif is None:
        tif = TimeInForce.GTC
    return OrderRequest(
        sized.symbol, sized.side, sized.type, sized.quantity, cid,
        price=sized.price, time_in_force=tif, reduce_only=sized.reduce_only,
        trigger_price=sized.trigger_price, close_position=sized.close_position,
    )  # fmt: skip


def _wire(order: OrderRequest) -> dict[str, str | bool | None]:
    def text(value: Decimal | None) -> str | None:
        return None if value is None else format(value, "f")

    return {
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "quantity": text(order.quantity),
        "price": text(order.price),
        "trigger_price": text(order.trigger_price),
        "time_in_force": order.time_in_force.value if order.time_in_force else None,
        "reduce_only": order.reduce_only,
        "close_position": order.close_position,
    }


def _next_id(cid: str) -> str:
    """The id of the next attempt of the same leg: the trailing sequence number + 1."""
    head, tail = cid.rsplit(".", 1)
    return f"{head}.r{int(tail[1:] or 0) + 1}"
