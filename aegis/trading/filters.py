"""The symbols' filters, from exchangeInfo: what sizing rounds and checks against.

Read at start-up, refreshed periodically, and at once after a rejection that says the filters the
engine holds are wrong (-1111 precision, -4164 notional, -1013, the -40xx filter codes): the intent
that got it is not sent again, but the next one is sized against what the exchange says now.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from loguru import logger

from aegis.binance.parse import ExchangeInfo
from aegis.clock import TimeSource
from aegis.domain import SymbolFilters

__all__ = ["FILTER_CODES", "FilterBook"]

# Rejections that mean "your view of the filters is stale" (facts section 3 and 4).
FILTER_CODES = frozenset({-1013, -1111, -4164, -4003, -4004, -4005, -4013, -4002, -4014, -4023, -4016, -4024, -4131})


class ExchangeInfoSource(Protocol):
    async def exchange_info(self, *, adopt_rate_limits: bool = True) -> ExchangeInfo: ...


class FilterBook:
    def __init__(self, rest: ExchangeInfoSource, clock: TimeSource, *, refresh_s: float = 3600.0) -> None:
        self._rest = rest
        self._clock = clock
        self.refresh_s = refresh_s
        self._filters: dict[str, SymbolFilters] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self.refreshes = 0

    def adopt(self, info: ExchangeInfo) -> None:
        """Take the filters of an exchangeInfo the engine already read (start-up)."""
        self._filters = dict(info.symbols)

    def get(self, symbol: str) -> SymbolFilters | None:
        return self._filters.get(symbol)

    async def refresh(self, reason: str) -> None:
        """Re-read exchangeInfo now; concurrent callers share one request."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._load(reason))
        await asyncio.shield(self._refreshing)

    async def _load(self, reason: str) -> None:
        info = await self._rest.exchange_info()
        self._filters = dict(info.symbols)
        self.refreshes += 1
        logger.info("symbol filters refreshed ({}): {} symbols", reason, len(self._filters))

    async def run(self) -> None:
        """Refresh every ``refresh_s``; a failure is logged and retried at the next period."""
        while True:
            await self._clock.sleep(self.refresh_s)
            try:
                await self.refresh("periodic")
            except Exception as exc:
                logger.warning("symbol filters could not be refreshed: {}", exc)
