"""The market feed's single writer: every store operation the feed decided, applied in that order.

Decisions are taken when an event arrives; their writes go through one queue, so the store receives
each symbol's candles strictly in open-time order. A stream candle that finds the writer idle with
nothing queued is written at once, in the caller's step: the same order of writes without a loop
iteration's hop to the writer task per candle. Anything else (REST batches, holes, "ready", a
backlog, a store whose lock is held) waits in the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from aegis.domain import Candle
from aegis.state.store import StateStore

__all__ = ["StoreWriter", "Write"]


@dataclass(frozen=True, slots=True)
class Write:
    """One store operation, applied in queue order: candles, a hole, or 'ready' after them."""

    symbol: str
    candles: tuple[Candle, ...] = ()
    hole: tuple[int, int] | None = None
    ready: bool = False


Stored = Callable[[str, tuple[Candle, ...], int], None]  # symbol, its candles written, how many were new
Ready = Callable[[str], None]


class StoreWriter:
    """The queue and its one consumer: ``await run()`` in the feed's task group."""

    def __init__(self, state: StateStore, stored: Stored, ready: Ready) -> None:
        self._state = state
        self._stored = stored
        self._ready = ready
        self._queue: asyncio.Queue[Write] = asyncio.Queue()
        self._idle = False  # run() waits for a write: nothing queued, nothing being applied

    def put(self, item: Write) -> None:
        self._queue.put_nowait(item)

    def put_or_write(self, item: Write) -> None:
        """Candles written now if nothing is ahead of them (see the module docstring), else queued."""
        if not (self._idle and self._queue.empty()):
            self._queue.put_nowait(item)
            return
        try:
            added = self._state.add_candles_now(item.symbol, item.candles)
            if added is None:
                self._queue.put_nowait(item)
            else:
                self._stored(item.symbol, item.candles, added)
        except Exception:
            logger.exception("market: store write failed for {}", item.symbol)

    async def join(self) -> None:
        """Wait until every queued write has reached the store."""
        await self._queue.join()

    async def run(self) -> None:
        try:
            while True:
                self._idle = True
                item = await self._queue.get()
                self._idle = False
                try:
                    await self._apply(item)
                except Exception:
                    logger.exception("market: store write failed for {}", item.symbol)
                finally:
                    self._queue.task_done()
        finally:
            self._idle = False

    async def _apply(self, item: Write) -> None:
        if item.candles:
            self._stored(item.symbol, item.candles, await self._state.add_candles(item.symbol, item.candles))
        elif item.hole is not None:
            await self._state.record_hole(item.symbol, *item.hole)
        elif item.ready:
            self._ready(item.symbol)
