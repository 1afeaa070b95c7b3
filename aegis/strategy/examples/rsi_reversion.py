"""EXAMPLE STRATEGY, NOT TRADING ADVICE: RSI mean reversion with an ATR protective stop.

It shows the strategy API end to end; it is not meant to make money. When flat: RSI (Wilder)
below ``oversold`` buys ``notional`` of the quote asset at the market, above ``overbought`` sells
short (if ``allow_short``); each entry carries a protective STOP_MARKET ``stop_atr`` ATRs away and a
TAKE_PROFIT_MARKET ``take_profit_atr`` ATRs away, both placed on the exchange once the entry fills,
so they survive the engine. While in a position: RSI back across ``exit_rsi`` closes it.

Every parameter comes from ``[strategy.params]`` in settings.toml.
"""

from __future__ import annotations

from decimal import Decimal

from aegis.strategy.api import Context
from aegis.strategy.indicators import ATR, RSI, IndicatorGap, IndicatorSet
from aegis.trading.intents import Intent

__all__ = ["RsiReversion"]


class RsiReversion:
    name = "rsi-reversion"

    def __init__(
        self,
        rsi_period: int = 14,
        oversold: float = 30.0,
        overbought: float = 70.0,
        exit_rsi: float = 50.0,
        atr_period: int = 14,
        stop_atr: float = 2.0,
        take_profit_atr: float = 3.0,
        notional: str | float = "200",
        allow_short: bool = True,
    ) -> None:
        if not 0 < oversold < exit_rsi < overbought < 100:
            raise ValueError(f"need 0 < oversold ({oversold}) < exit_rsi ({exit_rsi}) < overbought ({overbought}) < 100")
        if stop_atr <= 0 or take_profit_atr <= 0:
            raise ValueError("stop_atr and take_profit_atr must be > 0")
        self.notional = Decimal(str(notional))
        if not (self.notional.is_finite() and self.notional > 0):
            raise ValueError(f"notional must be a positive amount of the quote asset, got {notional!r}")
        self.rsi_period, self.atr_period = rsi_period, atr_period
        self.oversold, self.overbought, self.exit_rsi = oversold, overbought, exit_rsi
        self.stop_atr, self.take_profit_atr = stop_atr, take_profit_atr
        self.allow_short = allow_short
        # Enough history for Wilder's smoothing to forget its seed (TA-Lib's values converge by then).
        self.window = 10 * max(rsi_period, atr_period) + 1
        self._sets: dict[str, tuple[IndicatorSet, RSI, ATR]] = {}

    def _indicators(self, ctx: Context) -> tuple[RSI, ATR] | None:
        """The symbol's indicators after this candle; re-seeded from the clean window after any gap."""
        entry = self._sets.get(ctx.symbol)
        if entry is None:
            rsi, atr = RSI(self.rsi_period), ATR(self.atr_period)
            entry = self._sets[ctx.symbol] = (IndicatorSet(rsi=rsi, atr=atr), rsi, atr)
            entry[0].seed(ctx.window)
        else:
            try:
                entry[0].update(ctx.candle)
            except IndicatorGap:
                entry[0].seed(ctx.window)
        indicators, rsi, atr = entry
        return (rsi, atr) if indicators.ready else None

    def on_candle(self, ctx: Context) -> Intent | None:
        ready = self._indicators(ctx)
        if ready is None:
            return None
        rsi, atr = ready[0].value, ready[1].value
        if rsi is None or atr is None or atr <= 0:
            return None
        close = ctx.candle.close
        if ctx.position > 0:
            return ctx.close() if rsi > self.exit_rsi else None
        if ctx.position < 0:
            return ctx.close() if rsi < self.exit_rsi else None
        if ctx.open_orders:
            return None  # an entry is still working
        stop, take = _distance(self.stop_atr * atr), _distance(self.take_profit_atr * atr)
        if rsi < self.oversold:
            return ctx.buy(notional=self.notional, stop=close - stop, take_profit=close + take)
        if rsi > self.overbought and self.allow_short:
            return ctx.sell(notional=self.notional, stop=close + stop, take_profit=close - take)
        return None


def _distance(value: float) -> Decimal:
    """An indicator's float as a price distance; sizing rounds the resulting price onto the tick grid."""
    return Decimal(repr(value))
