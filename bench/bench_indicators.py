"""Incremental indicators: updates per second, one closed candle at a time.

Run: ``.venv/bin/python -m bench.bench_indicators`` (or ``make bench``).

Each indicator takes the 43,199 real BTCUSDT candles that ship with the simulator, one
``update`` each, from a fresh state (warm-up included). Two inputs: ``Bar`` (floats already)
and the engine's ``Candle`` (Decimal prices, converted on the way in). For scale, the
alternative the strategy would otherwise have: re-running TA-Lib's batch function over the
last 1000 closes for every new candle (``talib`` is a dev dependency, never on the hot path).
Best of ROUNDS interleaved rounds, CPU time.
"""

from __future__ import annotations

import csv
import gzip
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from importlib.resources import files
from typing import Any

import numpy as np
import talib

from aegis.domain import MINUTE_MS, Candle
from aegis.strategy.indicators import ATR, EMA, MACD, RSI, SMA, Bar, BollingerBands, Indicator, IndicatorSet
from bench.machine import describe

ROUNDS = 5
WINDOW = 1000  # candles a strategy keeps; what a batch recompute would run over
BATCH_SAMPLES = 2000


def load() -> tuple[list[Bar], list[Candle]]:
    path = files("aegis.sim") / "data" / "binance_usdm_BTCUSDT_1m.csv.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt") as fh:
        rows = list(csv.DictReader(fh))
    bars = [Bar(int(r["open_time_ms"]), float(r["high"]), float(r["low"]), float(r["close"])) for r in rows]
    candles = [
        Candle("BTCUSDT", int(r["open_time_ms"]), Decimal(r["open"]), Decimal(r["high"]), Decimal(r["low"]),
               Decimal(r["close"]), Decimal(r["volume"]), int(r["open_time_ms"]) + MINUTE_MS - 1,
               Decimal(0), 0, Decimal(0), Decimal(0))
        for r in rows
    ]
    return bars, candles


def makers() -> dict[str, Callable[[], Indicator[Any] | IndicatorSet]]:
    return {
        "SMA(20)": lambda: SMA(20),
        "EMA(20)": lambda: EMA(20),
        "RSI(14)": lambda: RSI(14),
        "ATR(14)": lambda: ATR(14),
        "BollingerBands(20, 2, 2)": lambda: BollingerBands(20),
        "MACD(12, 26, 9)": lambda: MACD(),
        "IndicatorSet of all six": lambda: IndicatorSet(
            sma=SMA(20), ema=EMA(20), rsi=RSI(14), atr=ATR(14), bands=BollingerBands(20), macd=MACD()
        ),
    }


def incremental(items: Sequence[Bar | Candle]) -> dict[str, float]:
    """CPU µs per update, best of ROUNDS, rounds interleaved across indicators."""
    best = {name: float("inf") for name in makers()}
    for _ in range(ROUNDS):
        for name, make in makers().items():
            indicator = make()
            update = indicator.update
            c0 = time.process_time()
            for item in items:
                update(item)
            best[name] = min(best[name], time.process_time() - c0)
    return {name: cpu / len(items) * 1e6 for name, cpu in best.items()}


def batch(closes: np.ndarray, highs: np.ndarray, lows: np.ndarray) -> dict[str, float]:
    """CPU µs per candle of re-running TA-Lib over the last WINDOW candles at each new one."""
    calls: dict[str, Callable[[int], object]] = {
        "SMA(20)": lambda i: talib.SMA(closes[i - WINDOW : i], 20),
        "EMA(20)": lambda i: talib.EMA(closes[i - WINDOW : i], 20),
        "RSI(14)": lambda i: talib.RSI(closes[i - WINDOW : i], 14),
        "ATR(14)": lambda i: talib.ATR(highs[i - WINDOW : i], lows[i - WINDOW : i], closes[i - WINDOW : i], 14),
        "BollingerBands(20, 2, 2)": lambda i: talib.BBANDS(closes[i - WINDOW : i], 20, 2.0, 2.0, 0),
        "MACD(12, 26, 9)": lambda i: talib.MACD(closes[i - WINDOW : i], 12, 26, 9),
    }
    ends = range(WINDOW, WINDOW + BATCH_SAMPLES)
    best = {name: float("inf") for name in calls}
    for _ in range(ROUNDS):
        for name, call in calls.items():
            c0 = time.process_time()
            for i in ends:
                call(i)
            best[name] = min(best[name], time.process_time() - c0)
    return {name: cpu / BATCH_SAMPLES * 1e6 for name, cpu in best.items()}


def main() -> int:
    print(f"machine: {describe()}")
    bars, candles = load()
    fma = "math.fma" if sys.version_info >= (3, 13) else "exact fma emulated in Python (< 3.13)"
    print(f"{len(bars):,} real BTCUSDT 1m candles, one update each, best of {ROUNDS} rounds, CPU time; {fma}")
    on_bars = incremental(bars)
    on_candles = incremental(candles)
    recompute = batch(*(np.array([getattr(b, f) for b in bars]) for f in ("close", "high", "low")))
    print(f"\n  {'indicator':<26}{'Bar (float) in':>22}{'Candle (Decimal) in':>26}{'TA-Lib on 1000, per candle':>30}")
    for name in makers():
        b, c = on_bars[name], on_candles[name]
        r = f"{recompute[name]:8.2f} µs" if name in recompute else ""
        print(f"  {name:<26}{1e6 / b:>12,.0f} /s {b:5.2f} µs{1e6 / c:>14,.0f} /s {c:5.2f} µs{r:>30}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
