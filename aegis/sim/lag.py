"""Binance's query lag: an accepted order the order queries do not see yet.

Live, an order can be on the book, and match, seconds to minutes before ``GET /fapi/v1/order``,
``openOrders``, ``allOrders`` and ``userTrades`` show it (freqtrade #12681); a client that
resends because a query said "Order does not exist." duplicates it. A lag rule (fault kind
``order_lag``) makes the next ``count`` orders an account gets accepted invisible to those four
queries for ``span_ms`` of exchange time. The order is live meanwhile: it matches, it counts
for -4116 (duplicate client id) and it can be cancelled. Its user-stream events go out at once
(``events="live"``) or are held back until it becomes visible (``events="delayed"``; this holds
the events of the placement itself, e.g. a MARKET order's fill, not of later fills).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aegis.sim.accounts import Order, Trade
from aegis.sim.bus import Bus, Payload
from aegis.sim.clock import SimClock


@dataclass(eq=False)
class LagRule:
    span_ms: int
    count: int
    api_key: str | None
    delay_events: bool
    hits: int = 0
    done: bool = False


class OrderLag:
    """The live lag rules and the held-back events they release."""

    def __init__(self, clock: SimClock, bus: Bus) -> None:
        self.clock = clock
        self.bus = bus
        self.rules: list[LagRule] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def take(self, api_key: str) -> LagRule | None:
        """The rule the next accepted order of ``api_key`` falls under (consuming one of its count)."""
        if not self.rules:
            return None
        self.rules = [r for r in self.rules if not r.done]
        rule = next((r for r in self.rules if r.api_key in (None, api_key)), None)
        if rule is not None:
            rule.hits += 1
            if rule.hits >= rule.count:
                rule.done = True
        return rule

    def hide(self, api_key: str, order: Order, rule: LagRule, now: int, held: list[Payload]) -> None:
        """Make ``order`` visible only ``rule.span_ms`` from now; publish ``held`` events then."""
        order.visible_ms = now + rule.span_ms
        if held:
            task = asyncio.get_running_loop().create_task(
                self._release(api_key, order.visible_ms, held), name=f"sim-lag-{order.order_id}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _release(self, api_key: str, at_ms: int, held: list[Payload]) -> None:
        await self.clock.sleep_until(at_ms)
        for event in held:
            self.bus.publish_user(api_key, event)

    def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def visible(order: Order, now: int) -> bool:
    return order.visible_ms <= now


def visible_trade(trade: Trade, orders: dict[int, Order], now: int) -> bool:
    order = orders.get(trade.order_id)
    return order is None or order.visible_ms <= now
