"""The strategy API: what a user implements, and the read-only view it gets of one closed candle.

A strategy is any class with a ``name``, a ``window`` (how many consecutive closed candles it needs)
and ``on_candle(ctx)``, called once per closed candle of each symbol, only when the last ``window``
candles are clean (no hole, nothing repaired or pending). It returns intents (or nothing); it never
talks to the exchange. The engine sizes each intent against the symbol's filters, passes it through
the risk gate and sends it exactly once.

    class Breakout:
        name = "breakout"
        window = 20

        def __init__(self, notional: str = "100") -> None:
            self.notional = Decimal(notional)

        def on_candle(self, ctx: Context) -> Intent | None:
            highs = [c.high for c in ctx.window[:-1]]
            if ctx.position == 0 and ctx.candle.close > max(highs):
                return ctx.buy(notional=self.notional, stop=min(c.low for c in ctx.window))
            return None

Optional hooks: ``on_start(symbols)`` once trading is ready, ``on_fill(fill, ctx)`` for a fill of
one of its orders, ``on_stop()`` at shutdown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import cached_property
from typing import Protocol, runtime_checkable

from aegis.domain import ZERO, AlgoOrder, Candle, Order, OrderType, Side, TimeInForce
from aegis.trading.intents import Intent

__all__ = ["Context", "Strategy", "StrategyOutput"]

StrategyOutput = Intent | Iterable[Intent] | None


@runtime_checkable
class Strategy(Protocol):
    name: str
    window: int

    def on_candle(self, ctx: Context) -> StrategyOutput: ...


class Context:
    """One symbol at one closed candle, read-only; the intent builders fill in the bookkeeping."""

    def __init__(
        self,
        strategy: str,
        symbol: str,
        candle: Candle,
        window_of: Callable[[], Sequence[Candle]],
        *,
        position: Decimal = ZERO,
        entry_price: Decimal = ZERO,
        open_orders: Sequence[Order] = (),
        open_algo_orders: Sequence[AlgoOrder] = (),
        balance: Decimal = ZERO,
        now_ms: int = 0,
    ) -> None:
        self.strategy = strategy
        self.symbol = symbol
        self.candle = candle
        self._window_of = window_of
        self.position = position
        self.entry_price = entry_price
        self.open_orders = tuple(open_orders)
        self.open_algo_orders = tuple(open_algo_orders)
        self.balance = balance
        self.now_ms = now_ms
        self._count = 0

    @cached_property
    def window(self) -> Sequence[Candle]:
        """The last ``window`` closed candles, consecutive minutes, oldest first (``candle`` last)."""
        return self._window_of()

    # --- intent builders ---------------------------------------------------------------------

    def buy(
        self,
        quantity: Decimal | None = None,
        notional: Decimal | None = None,
        *,
        price: Decimal | None = None,
        stop: Decimal | None = None,
        take_profit: Decimal | None = None,
        reduce_only: bool = False,
    ) -> Intent:
        """A BUY of ``quantity`` (base) or ``notional`` (quote), at ``price`` (LIMIT) or the market,
        with an optional protective stop and take-profit placed on the exchange once it fills."""
        return self._order(Side.BUY, quantity, notional, price, stop, take_profit, reduce_only)

    def sell(
        self,
        quantity: Decimal | None = None,
        notional: Decimal | None = None,
        *,
        price: Decimal | None = None,
        stop: Decimal | None = None,
        take_profit: Decimal | None = None,
        reduce_only: bool = False,
    ) -> Intent:
        return self._order(Side.SELL, quantity, notional, price, stop, take_profit, reduce_only)

    def target(self, position: Decimal, *, stop: Decimal | None = None, take_profit: Decimal | None = None) -> Intent:
        """Bring the position to ``position`` (signed base amount) with one order."""
        return Intent(self.strategy, self.symbol, self._cause(), target_position=position, stop_price=stop, take_profit=take_profit)

    def close(self) -> Intent:
        return self.target(ZERO)

    def _order(
        self,
        side: Side,
        quantity: Decimal | None,
        notional: Decimal | None,
        price: Decimal | None,
        stop: Decimal | None,
        take_profit: Decimal | None,
        reduce_only: bool,
    ) -> Intent:
        return Intent(
            self.strategy, self.symbol, self._cause(), side=side, quantity=quantity, notional=notional,
            type=OrderType.LIMIT if price is not None else OrderType.MARKET, price=price,
            time_in_force=TimeInForce.GTC if price is not None else None, reduce_only=reduce_only,
            stop_price=stop, take_profit=take_profit,
        )  # fmt: skip

    def _cause(self) -> str:
        """The candle and the intent's rank: the same candle always yields the same client ids."""
        self._count += 1
        return f"{self.candle.open_time_ms}.{self._count}"
