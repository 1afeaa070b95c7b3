"""The strategy runner: every closed candle of every symbol, evaluated once, on clean data only.

The market feed tells the runner when closed candles reached the store. For each symbol only the
newest one is evaluated (a gap fill that stores ten candles at once is not ten signals), and only
when the last ``window`` candles are clean (``market.skip_dirty_windows``): a window with a hole or
a candle still being repaired is counted as skipped. A strategy that raises is logged with its
traceback and skipped for that candle; the engine carries on. Its intents go to the trader one by
one, in order.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal

from loguru import logger

from aegis.clock import TimeSource
from aegis.domain import ZERO, Fill
from aegis.market.feed import MarketFeed
from aegis.ops.latency import TICK_RECEIVED
from aegis.state import StateStore, StatusValue
from aegis.strategy.api import Context, Strategy, StrategyOutput
from aegis.trading.clientid import is_ours
from aegis.trading.intents import Intent, Outcome
from aegis.trading.trader import Trader
from aegis.virtualtime import call_after_instant

__all__ = ["StrategyRunner"]


class StrategyRunner:
    def __init__(
        self,
        strategy: Strategy,
        market: MarketFeed,
        state: StateStore,
        trader: Trader,
        clock: TimeSource,
        *,
        quote_asset: str = "USDT",
    ) -> None:
        self.strategy = strategy
        self._market = market
        self._state = state
        self._trader = trader
        self._clock = clock
        self._quote = quote_asset
        self._due: dict[str, int] = {}  # symbol -> newest stored open time not yet evaluated
        self._wake = asyncio.Event()
        self._wake_soon = False  # a wake-up is scheduled (call_after_instant)
        self._evaluated: dict[str, int] = {}
        self.evaluations = 0
        self.skipped_dirty = 0
        self.skipped_not_ready = 0
        self.errors = 0
        self.intents = 0
        self.outcomes: Counter[str] = Counter()
        self.eval_seconds: list[float] = []  # recent evaluation times (for metrics)
        self.on_eval: Callable[[float], None] | None = None  # seconds per evaluation (metrics)
        market.add_listener(self._on_stored)
        state.on_fill(self._on_fill)

    def _on_stored(self, symbol: str, open_ms: int) -> None:
        self._due[symbol] = open_ms
        if not self._wake_soon:
            self._wake_soon = True
            call_after_instant(self._wake_now)  # it sees a fill at the close's instant too

    def _wake_now(self) -> None:
        self._wake_soon = False
        self._wake.set()

    async def run(self) -> None:
        on_start = getattr(self.strategy, "on_start", None)
        await self._trader.ready.wait()
        if callable(on_start):
            self._call(on_start, self._market.symbols)
        while True:
            await self._wake.wait()
            self._wake.clear()
            due, self._due = self._due, {}
            for symbol, open_ms in due.items():
                await self._evaluate(symbol, open_ms)

    async def _evaluate(self, symbol: str, open_ms: int) -> None:
        if self._evaluated.get(symbol, 0) >= open_ms:
            return
        if not self._trader.ready.is_set():
            self.skipped_not_ready += 1
            return
        if not self._market.may_evaluate(symbol, self.strategy.window):
            self.skipped_dirty += 1
            return
        self._evaluated[symbol] = open_ms
        ctx = self.context(symbol)
        if ctx is None or ctx.candle.open_time_ms != open_ms:
            return
        started = time.perf_counter()
        try:
            output = self.strategy.on_candle(ctx)
            intents = _intents(output)
        except Exception as exc:
            self.errors += 1
            logger.opt(exception=exc).error("strategy {} failed on {} {}; candle skipped", self.strategy.name, symbol, open_ms)
            return
        finally:
            self.evaluations += 1
            took = time.perf_counter() - started
            self.eval_seconds.append(took)
            if self.on_eval is not None:
                self.on_eval(took)
            if len(self.eval_seconds) > 1000:
                del self.eval_seconds[:500]
        if intents:
            TICK_RECEIVED.set(self._market.received_at(symbol, open_ms))
        for intent in intents:
            self.intents += 1
            sub = await self._trader.execute(intent)
            self.outcomes[sub.outcome] += 1
            if sub.outcome in (Outcome.REFUSED, Outcome.REJECTED):
                logger.info("{} {}: {} ({})", self.strategy.name, symbol, sub.outcome, sub.reason)

    def context(self, symbol: str) -> Context | None:
        """The read-only view the strategy gets for ``symbol``'s newest stored candle."""
        last = self._state.tail(symbol, 1)
        if not last:
            return None
        position = self._state.position(symbol)
        balance = self._state.balance(self._quote)
        window = self.strategy.window
        return Context(
            self.strategy.name,
            symbol,
            last[0],
            lambda: self._state.tail(symbol, window),
            position=position.amount if position is not None else ZERO,
            entry_price=position.entry_price if position is not None else ZERO,
            open_orders=[o for o in self._state.open_orders(symbol) if is_ours(o.client_order_id)],
            open_algo_orders=[a for a in self._state.open_algo_orders(symbol) if is_ours(a.client_algo_id)],
            balance=balance.wallet_balance if balance is not None else Decimal(0),
            now_ms=self._clock.now_ms(),
        )

    def _on_fill(self, fill: Fill) -> None:
        on_fill = getattr(self.strategy, "on_fill", None)
        if callable(on_fill) and is_ours(fill.client_order_id) and fill.commission_asset:
            ctx = self.context(fill.symbol)
            if ctx is not None:
                self._call(on_fill, fill, ctx)

    def stop(self) -> None:
        on_stop = getattr(self.strategy, "on_stop", None)
        if callable(on_stop):
            self._call(on_stop)

    def _call(self, hook: object, *args: object) -> None:
        try:
            hook(*args)  # type: ignore[operator]
        except Exception as exc:
            self.errors += 1
            logger.opt(exception=exc).error("strategy {} hook failed", self.strategy.name)

    def status(self) -> dict[str, StatusValue]:
        recent = self.eval_seconds[-200:]
        return {
            "strategy": self.strategy.name,
            "evaluations": self.evaluations,
            "skipped_dirty": self.skipped_dirty,
            "errors": self.errors,
            "intents": self.intents,
            "eval_ms_p50": round(sorted(recent)[len(recent) // 2] * 1000, 3) if recent else None,
        }


def _intents(output: StrategyOutput) -> list[Intent]:
    if output is None:
        return []
    if isinstance(output, Intent):
        return [output]
    items = list(output if isinstance(output, Iterable) else [output])
    for item in items:
        if not isinstance(item, Intent):
            raise TypeError(f"a strategy returns Intents (ctx.buy(), ctx.sell(), ctx.target()...), got {item!r}")
    return items
