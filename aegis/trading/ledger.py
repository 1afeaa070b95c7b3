"""The ledger: every fill and every close of our orders goes to the journal, whoever brought it.

Fills and order states reach the state store from the user stream, REST answers and reconciliation;
the store tells the ledger once per new fill and per written order state. The ledger queues the
journal writes (the hot path never waits for them), and keeps the day's realized PnL and fees for
the risk gate's daily loss limit and for reports.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

from loguru import logger

from aegis.clock import TimeSource
from aegis.domain import ZERO, Fill, Order
from aegis.state import StateStore
from aegis.trading.clientid import is_ours
from aegis.trading.journal import Journal, close_detail

__all__ = ["DAY_MS", "Ledger"]

DAY_MS = 86_400_000


class Ledger:
    def __init__(self, journal: Journal, state: StateStore, clock: TimeSource) -> None:
        self._journal = journal
        self._state = state
        self._clock = clock
        self._queue: asyncio.Queue[Fill | Order] = asyncio.Queue()
        self._day = -1
        self.realized_today = ZERO
        self.fees_today = ZERO
        self.realized_total = ZERO
        self.fees_total = ZERO
        self.fills = 0
        state.on_fill(self._queue.put_nowait)
        state.on_order(self._on_order)

    def _on_order(self, order: Order) -> None:
        if is_ours(order.client_order_id) and not order.status.is_open:
            self._queue.put_nowait(order)

    def daily_pnl(self) -> Decimal:
        """Realized PnL minus fees since 00:00 UTC, plus the open positions' unrealized PnL."""
        self._roll(self._clock.now_ms())
        unrealized = sum((p.unrealized_pnl for p in self._state.positions()), ZERO)
        return self.realized_today - self.fees_today + unrealized

    def _roll(self, now_ms: int) -> None:
        day = now_ms // DAY_MS
        if day != self._day:
            self._day, self.realized_today, self.fees_today = day, ZERO, ZERO

    def _count(self, fill: Fill) -> None:
        self._roll(fill.time_ms)
        self.fills += 1
        fee = fill.commission if fill.commission_asset in ("USDT", "") else ZERO
        self.realized_today += fill.realized_pnl
        self.fees_today += fee
        self.realized_total += fill.realized_pnl
        self.fees_total += fee

    async def run(self) -> None:
        """Write queued fills and closes to the journal until cancelled; a failed write is logged."""
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, Fill):
                    await self._journal.record_fill(item)
                    if item.commission_asset:  # the fee-bearing copy carries the fee and realized PnL
                        self._count(item)
                else:
                    # Usually the order manager journaled this close from the REST answer: no write then.
                    await self._journal.record_close(item.client_order_id, self._clock.now_ms(), close_detail(item))
            except Exception as exc:
                logger.opt(exception=exc).error("journal write failed for {!r}", item)
            finally:
                self._queue.task_done()

    async def flush(self) -> None:
        """Wait until every queued write is in the journal (shutdown, tests)."""
        with contextlib.suppress(asyncio.CancelledError):
            await self._queue.join()
