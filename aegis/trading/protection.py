"""Protective stops and take-profits live on the exchange, so they outlive the engine.

When an entry asked for them and its position is open, a STOP_MARKET (and a TAKE_PROFIT_MARKET)
with closePosition=true goes to POST /fapi/v1/algoOrder (conditional orders on /fapi/v1/order
have answered -4120 since December 2025), its trigger sized like any price. The keeper watches the
store (ALGO_UPDATE, positions): a protective order the exchange reports gone (cancelled by
someone, expired) while the position is still open is placed again; once the position is flat the
remaining one is cancelled. A triggered stop closes the position on the exchange even while the
engine is down; when the engine comes back the reconciler adopts the result.

A level the market has already passed (Binance would answer -2021 "Order would immediately
trigger", or did) is acted on as the order would have: the position is closed with a reduce-only
MARKET order. Our closePosition orders on a flat symbol that no protection claims (left by an
earlier life of the engine after the other leg closed the position) are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from loguru import logger

from aegis.binance.errors import ClockSkew, OutcomeUnknown, RateLimited, Retryable
from aegis.clock import TimeSource
from aegis.config import OrderSettings
from aegis.domain import ZERO, OrderRequest, OrderType, Side
from aegis.state import StateStore
from aegis.state.store import OPEN_ALGO_STATUSES
from aegis.trading.clientid import client_id, is_ours
from aegis.trading.filters import FilterBook
from aegis.trading.intents import Intent, Outcome, Submission
from aegis.trading.orders import OrderManager
from aegis.trading.sizing import Refusal, SizingRequest, size

_PASSING = (Retryable, RateLimited, OutcomeUnknown, ClockSkew)

__all__ = ["Protection", "ProtectionKeeper"]

Prices = Callable[[str], Decimal | None]
WOULD_TRIGGER = -2021  # "Order would immediately trigger."
# A filled entry's position reaches the store from the user stream, moments after the REST answer:
# until the keeper has seen it open (or this long has passed), a flat position means "not yet".
POSITION_GRACE_MS = 30_000


@dataclass
class Protection:
    """What one symbol's open position should carry on the exchange."""

    strategy: str
    cause: str
    stop_price: Decimal | None
    take_profit: Decimal | None
    placements: dict[str, int] = field(default_factory=dict)  # per leg: each placement gets a new id
    closing: str | None = None  # the cause of the market close sent because a level was passed
    tracked_ms: int = 0  # when the entry was placed
    opened: bool = False  # the keeper has seen the position open


class ProtectionKeeper:
    def __init__(
        self,
        orders: OrderManager,
        state: StateStore,
        filters: FilterBook,
        clock: TimeSource,
        prices: Prices,
        settings: OrderSettings,
        *,
        check_s: float = 5.0,
    ) -> None:
        self._orders = orders
        self._state = state
        self._filters = filters
        self._clock = clock
        self._prices = prices
        self.settings = settings
        self.check_s = check_s
        self.wanted: dict[str, Protection] = {}
        self._wake = asyncio.Event()
        self.placed = 0
        self.replaced = 0
        self.cancelled = 0
        state.on_order(lambda _: self._wake.set())
        state.on_fill(lambda _: self._wake.set())

    def track(self, intent: Intent, submission: Submission) -> None:
        """An entry that asked for protection was placed: its position carries it once it is open."""
        if submission.outcome is not Outcome.PLACED or (intent.stop_price is None and intent.take_profit is None):
            return
        self.wanted[intent.symbol] = Protection(
            intent.strategy, intent.cause, intent.stop_price, intent.take_profit, tracked_ms=self._clock.now_ms()
        )
        self._wake.set()

    async def run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for returns the result of a wait that
            # completed in the same step as a cancel, swallowing the cancel (the task never ends).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._clock.wall_seconds(self.check_s)):
                    await self._wake.wait()
            self._wake.clear()
            for symbol in list(self.wanted):
                await self._guarded(self._keep(symbol), f"protective orders of {symbol} could not be kept")
            await self._guarded(self._sweep(), "left-over protective orders could not be swept")

    async def _guarded(self, step: Coroutine[Any, Any, None], what: str) -> None:
        """An exchange error must not end the watch over every stop. A passing one (503, rate limit,
        unknown outcome, clock) is a warning: the next check, ``check_s`` later, tries again."""
        try:
            await step
        except _PASSING as exc:
            logger.warning("{} ({}); trying again in {:g} s", what, exc, self.check_s)
        except Exception as exc:
            logger.opt(exception=exc).error(what)

    async def _keep(self, symbol: str) -> None:
        wanted = self.wanted[symbol]
        position = self._state.position(symbol)
        ours = [a for a in self._state.open_algo_orders(symbol) if a.client_algo_id.startswith(_prefix(wanted, symbol))]
        if position is None or position.amount == ZERO:
            if self._entry_resting(symbol):
                return  # the entry has not filled yet
            if not wanted.opened and self._clock.now_ms() - wanted.tracked_ms < POSITION_GRACE_MS:
                return  # filled (the REST answer said so) but the stream has not shown the position yet
            for algo in ours:
                if await self._orders.cancel(algo.client_algo_id, symbol, algo=True):
                    self.cancelled += 1
            del self.wanted[symbol]
            return
        wanted.opened = True
        exit_side = Side.SELL if position.amount > 0 else Side.BUY
        for kind, trigger in ((OrderType.STOP_MARKET, wanted.stop_price), (OrderType.TAKE_PROFIT_MARKET, wanted.take_profit)):
            if trigger is None or any(a.type is kind and a.status in OPEN_ALGO_STATUSES for a in ours):
                continue
            await self._place(symbol, wanted, kind, exit_side, trigger)

    async def _sweep(self) -> None:
        """Our closePosition orders on a flat symbol the keeper does not watch (placed by an earlier
        life of the engine, whose position has since closed by the other leg) are cancelled: left
        there, they would close the next position on that symbol at a stale level."""
        for algo in self._state.open_algo_orders():
            symbol = algo.symbol
            if symbol in self.wanted or not (algo.close_position and is_ours(algo.client_algo_id)):
                continue
            position = self._state.position(symbol)
            if (position is None or position.amount == ZERO) and not self._entry_resting(symbol):
                logger.warning("{} {} {} is left from a closed position: cancelling it", symbol, algo.type, algo.client_algo_id)
                if await self._orders.cancel(algo.client_algo_id, symbol, algo=True):
                    self.cancelled += 1

    def _entry_resting(self, symbol: str) -> bool:
        return any(not o.reduce_only for o in self._state.open_orders(symbol))

    async def _place(self, symbol: str, wanted: Protection, kind: OrderType, side: Side, trigger: Decimal) -> None:
        filters, mark = self._filters.get(symbol), self._prices(symbol)
        if filters is None or mark is None:
            return
        sized = size(SizingRequest(symbol, side, kind, trigger_price=trigger, close_position=True), filters, mark)
        if isinstance(sized, Refusal):
            if sized.code == WOULD_TRIGGER:  # the market already passed the level: do what the order would
                await self._close(symbol, wanted, kind, f"{sized.reason}")
            else:
                logger.warning("{} {} at {} cannot be placed ({}): the position stays as it is", symbol, kind, trigger, sized.reason)
            return
        leg = "stop" if kind is OrderType.STOP_MARKET else "take_profit"
        seq = wanted.placements.get(leg, 0)
        cid = client_id(wanted.strategy, symbol, wanted.cause, leg, seq)
        wanted.placements[leg] = seq + 1
        order = OrderRequest(symbol, side, kind, None, cid, trigger_price=sized.trigger_price, close_position=True)
        sub = await self._orders.send(order, strategy=wanted.strategy, leg=leg, algo=True, working_type=self.settings.stop_working_type)
        if sub.outcome is Outcome.REJECTED and sub.code == WOULD_TRIGGER:  # the mark moved past it meanwhile
            await self._close(symbol, wanted, kind, f"the exchange answered {sub.reason}")
            return
        if sub.outcome is Outcome.PLACED:
            if seq > 0:
                self.replaced += 1
                logger.warning("{} {} was gone from the exchange with the position open: placed again as {}", symbol, kind, cid)
            self.placed += 1
            logger.info("{} protected by {} at {} ({})", symbol, kind, sized.trigger_price, cid)


    async def _close(self, symbol: str, wanted: Protection, kind: OrderType, why: str) -> None:
        """The level is passed, so the protective order would trigger at once: close the position now
        with a reduce-only MARKET order, as it would have (once per protection)."""
        if wanted.closing is not None:
            return
        wanted.closing = f"{wanted.cause}:{'stop' if kind is OrderType.STOP_MARKET else 'tp'}-passed"
        logger.warning("{} {} level already passed ({}): closing the position at the market", symbol, kind, why)
        intent = Intent(wanted.strategy, symbol, wanted.closing, target_position=ZERO)
        sub = await self._orders.submit(intent)
        if sub.outcome not in (Outcome.PLACED, Outcome.NOTHING, Outcome.DUPLICATE):
            wanted.closing = None  # try again at the next look


def _prefix(wanted: Protection, symbol: str) -> str:
    """The client ids of a protection's orders share the intent's digest."""
    return client_id(wanted.strategy, symbol, wanted.cause, "stop").rsplit(".", 1)[0]
