"""One governor for every REST call: weight and order budgets, priorities, global cool-down.

Binance counts request weight per IP per minute and orders per account per 10 s and per
minute, in fixed windows; it reports what it counted in X-MBX-USED-WEIGHT-1M and
X-MBX-ORDER-COUNT-10S / -1M. Exceeding the weight gives 429 and, if one keeps going, a 418
IP ban of minutes to days. So callers queue here instead of failing: a caller proceeds
only when its cost fits under a configurable share of the limits, orders and cancels go
first, and after a 429 / 418 nothing is sent until the exchange said we may.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum

from loguru import logger

from aegis.clock import TimeSource

__all__ = ["Cost", "Permit", "Priority", "RateGovernor", "RateLimits"]

WEIGHT_HEADER = "x-mbx-used-weight-1m"
ORDER_10S_HEADER = "x-mbx-order-count-10s"
ORDER_1M_HEADER = "x-mbx-order-count-1m"


class Priority(IntEnum):
    """Lower goes first. Orders and cancels protect money; backfill can always wait."""

    ORDER = 0
    ACCOUNT = 1
    MARKET_DATA = 2
    BACKFILL = 3


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The limits from exchangeInfo ``rateLimits`` (mainnet defaults)."""

    weight_per_minute: int = 2400
    orders_per_10s: int = 300
    orders_per_minute: int = 1200


@dataclass(frozen=True, slots=True)
class Cost:
    """What one request consumes: IP weight, and 1 on each order counter for placements."""

    weight: int
    orders: int = 0


@dataclass(frozen=True, slots=True)
class Permit:
    """Proof of admission; remembers the windows it was charged to, to read headers right."""

    minute: int
    ten_seconds: int
    cost: Cost


# Share of the budget each priority may fill: lower classes leave headroom so an order or
# a cancel never waits for the next minute behind a backfill.
DEFAULT_HEADROOM: Mapping[Priority, float] = {
    Priority.ORDER: 1.0,
    Priority.ACCOUNT: 0.95,
    Priority.MARKET_DATA: 0.9,
    Priority.BACKFILL: 0.8,
}

_WINDOW_SLACK_S = 0.05
MAX_PAUSE_S = 3 * 24 * 3600.0  # Binance's longest IP ban  # wake just after the exchange's window has rolled


class RateGovernor:
    """Admits REST calls under ``share`` of the exchange's limits, highest priority first."""

    def __init__(
        self,
        clock: TimeSource,
        limits: RateLimits | None = None,
        *,
        share: float = 0.8,
        headroom: Mapping[Priority, float] | None = None,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.clock = clock
        self.limits = limits or RateLimits()
        self.share = share
        self.headroom = dict(headroom or DEFAULT_HEADROOM)
        self._cond = asyncio.Condition()
        self._waiting: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self._minute = -1
        self._ten_seconds = -1
        self._weight_used = 0
        self._orders_1m = 0
        self._orders_10s = 0
        self._paused_until_ms = 0
        self.pause_reason = ""
        self.pauses = 0

    # --- configuration and observation --------------------------------------------------

    def configure(self, limits: RateLimits) -> None:
        """Adopt the limits the exchange published (exchangeInfo is authoritative)."""
        if limits != self.limits:
            logger.info("rate limits: {}", limits)
        self.limits = limits

    @property
    def used_weight(self) -> int:
        self._roll(self.clock.now_ms())
        return self._weight_used

    @property
    def order_counts(self) -> tuple[int, int]:
        """(orders in the current 10 s window, orders in the current minute)."""
        self._roll(self.clock.now_ms())
        return self._orders_10s, self._orders_1m

    @property
    def paused_until_ms(self) -> int:
        return self._paused_until_ms

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def problems(self) -> list[str]:
        """/health: a rate-limit pause or an IP ban is in force, with its end in exchange time."""
        now = self.clock.now_ms()
        if self._paused_until_ms <= now:
            return []
        end = datetime.fromtimestamp(self._paused_until_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        left = (self._paused_until_ms - now) / 1000
        return [f"REST paused until {end} ({left:.0f} s left): {self.pause_reason}"]

    def observe(self, permit: Permit, headers: Mapping[str, str]) -> None:
        """Take the exchange's own counts; they include other clients on our IP/account."""
        now = self.clock.now_ms()
        self._roll(now)
        weight, o10, o1m = _read_counters(headers.items())
        if permit.minute == self._minute:
            if weight is not None:
                self._weight_used = max(self._weight_used, weight)
            if o1m is not None:
                self._orders_1m = max(self._orders_1m, o1m)
        if permit.ten_seconds == self._ten_seconds and o10 is not None:
            self._orders_10s = max(self._orders_10s, o10)

    def pause_for(self, seconds: float, reason: str = "") -> None:
        """Stop ALL admissions for ``seconds`` (429 Retry-After, 418 ban); never shortens a pause."""
        seconds = min(max(0.0, seconds), MAX_PAUSE_S) if math.isfinite(seconds) else MAX_PAUSE_S
        until = self.clock.now_ms() + math.ceil(seconds * 1000)
        if until > self._paused_until_ms:
            self._paused_until_ms = until
            self.pause_reason = reason
            self.pauses += 1
            logger.warning("REST paused for {:.1f} s: {}", seconds, reason)

    def pause_until_window_end(self, reason: str = "") -> None:
        """A 429 without a stated end: the weight window resets at the next minute."""
        now = self.clock.now_ms()
        self.pause_for(((now // 60_000 + 1) * 60_000 - now) / 1000 + _WINDOW_SLACK_S, reason)

    def saturate_orders(self, *, minute: bool = False) -> None:
        """-1015: an order counter is full whatever we counted; orders wait for its next window."""
        self._roll(self.clock.now_ms())
        self._orders_10s = max(self._orders_10s, self.limits.orders_per_10s)
        if minute:
            self._orders_1m = max(self._orders_1m, self.limits.orders_per_minute)

    # --- admission ----------------------------------------------------------------------

    async def acquire(self, cost: Cost, priority: Priority = Priority.MARKET_DATA) -> Permit:
        """Wait until ``cost`` fits and every caller ahead of us (by priority, then FIFO) went."""
        if not self._waiting and self._delay_s(cost, priority) <= 0:
            return self._charge(cost)  # nobody ahead and it fits: no queue, no lock (the order path)
        async with self._cond:
            ticket = (int(priority), next(self._seq))
            heapq.heappush(self._waiting, ticket)
            try:
                while True:
                    delay: float | None = None
                    if self._waiting[0] == ticket:
                        delay = self._delay_s(cost, priority)
                        if delay <= 0:
                            return self._charge(cost)
                    await self._wait(delay)
            finally:
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
                self._cond.notify_all()

    async def _wait(self, delay_s: float | None) -> None:
        if delay_s is None:
            await self._cond.wait()
            return
        try:
            await asyncio.wait_for(self._cond.wait(), timeout=self.clock.wall_seconds(delay_s))
        except TimeoutError:
            pass

    def _roll(self, now_ms: int) -> None:
        minute, ten = now_ms // 60_000, now_ms // 10_000
        if minute != self._minute:
            self._minute, self._weight_used, self._orders_1m = minute, 0, 0
        if ten != self._ten_seconds:
            self._ten_seconds, self._orders_10s = ten, 0

    def _delay_s(self, cost: Cost, priority: Priority) -> float:
        """Seconds until ``cost`` may go; 0 when it fits now."""
        now = self.clock.now_ms()
        if self._paused_until_ms > now:
            return (self._paused_until_ms - now) / 1000
        self._roll(now)
        fraction = self.share * self.headroom.get(priority, 1.0)
        to_minute = ((self._minute + 1) * 60_000 - now) / 1000 + _WINDOW_SLACK_S
        to_ten = ((self._ten_seconds + 1) * 10_000 - now) / 1000 + _WINDOW_SLACK_S
        if cost.weight and not _fits(self._weight_used, cost.weight, self.limits.weight_per_minute, fraction):
            return to_minute
        if cost.orders:
            if not _fits(self._orders_1m, cost.orders, self.limits.orders_per_minute, fraction):
                return to_minute
            if not _fits(self._orders_10s, cost.orders, self.limits.orders_per_10s, fraction):
                return to_ten
        return 0.0

    def _charge(self, cost: Cost) -> Permit:
        self._weight_used += cost.weight
        self._orders_1m += cost.orders
        self._orders_10s += cost.orders
        return Permit(self._minute, self._ten_seconds, cost)


def _fits(used: int, cost: int, limit: int, fraction: float) -> bool:
    """Fits under the budget; a lone request bigger than the budget may go in an empty window."""
    budget = math.floor(limit * fraction)
    return used + cost <= budget or used == 0


def _read_counters(items: Iterable[tuple[str, str]]) -> tuple[int | None, int | None, int | None]:
    """Header names compared case-insensitively: both spellings are seen in the wild."""
    weight = o10 = o1m = None
    for key, value in items:
        name = key.lower()
        if name == WEIGHT_HEADER:
            weight = _to_int(value)
        elif name == ORDER_10S_HEADER:
            o10 = _to_int(value)
        elif name == ORDER_1M_HEADER:
            o1m = _to_int(value)
    return weight, o10, o1m


def _to_int(value: str) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        return None
