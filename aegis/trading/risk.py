"""The risk gate: every intent passes the configured limits before it is sized, and a kill switch.

Limits (``[risk]``; 0 disables one): position notional per symbol and in total after the order,
the order's own notional, leverage, orders per minute (ours, below Binance's order-count limits),
and the day's loss (realized + unrealized since 00:00 UTC), which engages the kill switch. Orders
that only reduce a position pass every limit but the kill switch's "flatten" makes them: an
engine must always be able to get out.

The kill switch stops new orders until an operator clears it; it is engaged by a file, SIGUSR1,
an ops call (POST /kill), or the daily loss limit. What else happens (cancel open orders, flatten
positions) is the engine's, by ``risk.on_kill``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from decimal import Decimal

import msgspec
from loguru import logger

from aegis.clock import TimeSource
from aegis.config import RiskSettings
from aegis.domain import ZERO, Side
from aegis.state import StateStore

__all__ = ["KillSwitch", "RiskGate", "RiskRefusal"]

Prices = Callable[[str], Decimal | None]


class RiskRefusal(msgspec.Struct, frozen=True):
    """Which limit refused an order, what it allows and what the order would have made it."""

    limit: str
    allowed: str
    value: str
    reason: str


class KillSwitch:
    """Engaged: no new order (exits excepted) until an operator clears it. Also serves as the
    reconciler's halt, which blocks the same way but triggers no cancel or flatten."""

    def __init__(self, clock: TimeSource, name: str = "kill switch") -> None:
        self._clock = clock
        self.name = name
        self.reason: str | None = None
        self.since_ms: int | None = None
        self.engagements = 0

    @property
    def engaged(self) -> bool:
        return self.reason is not None

    def engage(self, reason: str) -> bool:
        """True if this call engaged it (it was not engaged yet)."""
        if self.reason is not None:
            return False
        self.reason, self.since_ms = reason, self._clock.now_ms()
        self.engagements += 1
        logger.critical("{} engaged: {}; no new orders until it is cleared", self.name.upper(), reason)
        return True

    def clear(self, who: str) -> bool:
        if self.reason is None:
            return False
        logger.warning("{} cleared by {} (was: {})", self.name, who, self.reason)
        self.reason = self.since_ms = None
        return True


class RiskGate:
    def __init__(
        self,
        settings: RiskSettings,
        state: StateStore,
        clock: TimeSource,
        prices: Prices,
        daily_pnl: Callable[[], Decimal],
    ) -> None:
        self.settings = settings
        self._state = state
        self._clock = clock
        self._prices = prices
        self._daily_pnl = daily_pnl
        self.kill = KillSwitch(clock)
        self.halt = KillSwitch(clock, "trading halt")
        self._sent: deque[int] = deque()  # exchange ms of orders let through in the last minute
        self.refusals: Counter[str] = Counter()

    def check(
        self, symbol: str, side: Side, quantity: Decimal, price: Decimal, *, reduce_only: bool, exit_order: bool = False
    ) -> RiskRefusal | None:
        """None if the order may go; else the limit that refused it (logged and counted)."""
        refusal = self._check(symbol, side, quantity, price, reduce_only=reduce_only, exit_order=exit_order)
        if refusal is not None:
            self.refusals[refusal.limit] += 1
            logger.warning("risk gate refused {} {} {} {}: {}", symbol, side, quantity, price, refusal.reason)
        return refusal

    def record_order(self) -> None:
        """An order went to the exchange (for the per-minute limit)."""
        self._sent.append(self._clock.now_ms())

    def _check(
        self, symbol: str, side: Side, quantity: Decimal, price: Decimal, *, reduce_only: bool, exit_order: bool
    ) -> RiskRefusal | None:
        s = self.settings
        if self.kill.engaged and not exit_order:
            return RiskRefusal("kill_switch", "no new orders", "engaged", f"kill switch engaged: {self.kill.reason}")
        if self.halt.engaged and not (exit_order or reduce_only):
            return RiskRefusal("halt", "no new orders", "engaged", f"trading halted: {self.halt.reason}")
        if (loss := self._loss_limit()) is not None and not (reduce_only or exit_order):
            return loss
        if (rate := self._rate_limit()) is not None and not exit_order:
            return rate
        if reduce_only or exit_order:
            return None  # getting out is always allowed
        notional = quantity * price
        if s.max_order_notional and notional > s.max_order_notional:
            return _refuse("max_order_notional", s.max_order_notional, notional, "order notional")
        leverage = self._state.leverage(symbol)
        if leverage is not None and leverage > s.max_leverage:
            return RiskRefusal("max_leverage", str(s.max_leverage), str(leverage), f"{symbol} leverage {leverage}x")
        position = self._state.position(symbol)
        current = position.amount if position is not None else ZERO
        after = abs(current + side.sign * quantity) * price
        if s.max_position_notional and after > s.max_position_notional:
            return _refuse("max_position_notional", s.max_position_notional, after, f"{symbol} position after the order")
        total = after + sum(
            (abs(p.amount) * (self._prices(p.symbol) or p.entry_price) for p in self._state.positions() if p.symbol != symbol),
            ZERO,
        )
        if s.max_total_notional and total > s.max_total_notional:
            return _refuse("max_total_notional", s.max_total_notional, total, "total position notional after the order")
        return None

    def _loss_limit(self) -> RiskRefusal | None:
        limit = self.settings.max_daily_loss
        if not limit:
            return None
        pnl = self._daily_pnl()
        if pnl >= -limit:
            return None
        self.kill.engage(f"daily loss {-pnl} beyond max_daily_loss {limit}")
        return _refuse("max_daily_loss", limit, -pnl, "loss since 00:00 UTC")

    def _rate_limit(self) -> RiskRefusal | None:
        now = self._clock.now_ms()
        while self._sent and now - self._sent[0] >= 60_000:
            self._sent.popleft()
        limit = self.settings.max_orders_per_minute
        if len(self._sent) >= limit:
            return RiskRefusal("max_orders_per_minute", str(limit), str(len(self._sent)), "orders in the last minute")
        return None


def _refuse(limit: str, allowed: Decimal, value: Decimal, what: str) -> RiskRefusal:
    return RiskRefusal(limit, format(allowed, "f"), format(value.normalize(), "f"), f"{what} {value:f} > {limit} {allowed}")
