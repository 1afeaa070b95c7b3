"""aegis' example strategy (aegis/strategy/examples/rsi_reversion.py) as a freqtrade strategy.

Loaded by freqtrade from this directory (``--strategy-path``) in the peers' venv only.
Same rules: RSI(14, Wilder, TA-Lib) below 30 buys, above 70 sells short, a fixed 200 USDT notional
(leverage 1), a stop 2 ATR(14) and a take-profit 3 ATR from the signal candle's close, and RSI back
across 50 closes. Where freqtrade differs: the stop and take-profit are freqtrade's own (stoploss
on the candle's low/high; the take-profit as a custom ROI, whose exit price includes the fees),
not orders resting on an exchange; the RSI exit fills at the next candle's open, as aegis' market
order does on the next candle's path.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

import talib.abstract as ta
from freqtrade.persistence import Trade
from freqtrade.strategy import IStrategy, stoploss_from_absolute
from pandas import DataFrame

P = {"rsi_period": 14, "oversold": 30.0, "overbought": 70.0, "exit_rsi": 50.0, "atr_period": 14,
     "stop_atr": 2.0, "take_profit_atr": 3.0, "notional": 200.0}  # fmt: skip


class RsiReversionFt(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "1m"
    can_short = True
    startup_candle_count = int(10 * max(P["rsi_period"], P["atr_period"]) + 1)  # aegis' window: 141
    minimal_roi: ClassVar[dict[str, float]] = {
        "0": 100.0
    }  # no time-based ROI: the take-profit is custom_roi below
    stoploss = -0.99  # the ATR stop is custom_stoploss below, set once the entry fills
    use_custom_stoploss = True
    use_custom_roi = True
    use_exit_signal = True
    exit_profit_only = False
    process_only_new_candles = True
    # Each trade's (stop, take-profit) prices, held here and not as trade.set_custom_data: in a
    # backtest freqtrade scans every trade's custom data on each read, quadratic in the trades.
    levels: ClassVar[dict[tuple[str, datetime], tuple[float, float]]] = {}

    def populate_indicators(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe["rsi"] = ta.RSI(dataframe, timeperiod=int(P["rsi_period"]))
        dataframe["atr"] = ta.ATR(dataframe, timeperiod=int(P["atr_period"]))
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        ready = dataframe["atr"] > 0
        dataframe.loc[ready & (dataframe["rsi"] < P["oversold"]), "enter_long"] = 1
        dataframe.loc[ready & (dataframe["rsi"] > P["overbought"]), "enter_short"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe.loc[dataframe["rsi"] > P["exit_rsi"], "exit_long"] = 1
        dataframe.loc[dataframe["rsi"] < P["exit_rsi"], "exit_short"] = 1
        return dataframe

    def custom_stake_amount(self, pair: str, current_time: datetime, current_rate: float,
                            proposed_stake: float, min_stake: float | None, max_stake: float,
                            leverage: float, entry_tag: str | None, side: str, **kwargs: Any) -> float:  # fmt: skip
        return float(P["notional"])

    def order_filled(
        self, pair: str, trade: Trade, order: Any, current_time: datetime, **kwargs: Any
    ) -> None:
        """At the entry's fill: the stop and take-profit prices from the signal candle (the one before)."""
        key = (pair, trade.open_date_utc)
        if order.ft_order_side != trade.entry_side or key in self.levels:
            return
        frame, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
        row = frame.loc[frame["date"] == trade.open_date_utc - timedelta(minutes=1)]
        if row.empty:
            return
        close, atr = float(row["close"].iloc[0]), float(row["atr"].iloc[0])
        sign = -1.0 if trade.is_short else 1.0
        self.levels[key] = (close - sign * P["stop_atr"] * atr, close + sign * P["take_profit_atr"] * atr)

    def custom_stoploss(self, pair: str, trade: Trade, current_time: datetime, current_rate: float,
                        current_profit: float, after_fill: bool, **kwargs: Any) -> float | None:  # fmt: skip
        levels = self.levels.get((pair, trade.open_date_utc))
        if levels is None:
            return None
        return stoploss_from_absolute(
            levels[0], current_rate, is_short=trade.is_short, leverage=trade.leverage
        )

    def custom_roi(self, pair: str, trade: Trade, current_time: datetime, trade_duration: int,
                   entry_tag: str | None, side: str, **kwargs: Any) -> float | None:  # fmt: skip
        levels = self.levels.get((pair, trade.open_date_utc))
        if levels is None:
            return None
        return max(abs(levels[1] - trade.open_rate) / trade.open_rate, 1e-6) * trade.leverage
