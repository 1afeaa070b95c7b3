"""Incremental technical indicators over closed 1-minute candles, value for value TA-Lib's.

One closed candle per ``update``, O(1) (amortized for Bollinger bands), in plain float:
indicators decide, they never size; no value here may become an order quantity or price.
Candles are keyed by open time: one that does not open exactly ``MINUTE_MS`` after the last
(a hole, a duplicate, out of order) raises ``IndicatorGap`` and changes nothing.

The reference is TA-Lib C 0.8.1 (the ``ta-lib`` 0.8.2 wheel): same first value, same seeds,
same ``unstable`` periods, and its float operations in its order, fused multiply-adds included,
so the values are identical (tests/test_indicators.py). Differences: see INDICATORS_NOTES.md.
"""

from __future__ import annotations

import math
import sys
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from aegis.domain import MINUTE_MS, Candle

T = TypeVar("T")


class IndicatorGap(ValueError):
    """A candle not opening exactly one minute after the last: "gap", "duplicate" or "out_of_order"."""

    def __init__(self, who: str, last_open_ms: int, open_ms: int) -> None:
        self.last_open_ms, self.open_ms, step = last_open_ms, open_ms, open_ms - last_open_ms
        self.kind = "gap" if step > 0 else "duplicate" if step == 0 else "out_of_order"
        what = self.kind.replace("_", " ")
        if step > 0:
            what = f"{step // MINUTE_MS - 1} candle(s) missing" if step % MINUTE_MS == 0 else "off the minute"
        expected = last_open_ms + MINUTE_MS
        super().__init__(f"{who}: candle opening at {open_ms} refused, expected {expected} ({what})")


class Bar(NamedTuple):
    """The part of a candle indicators read, in float (tests, backtests, non-Decimal sources)."""

    open_time_ms: int
    high: float
    low: float
    close: float


CandleT = TypeVar("CandleT", Candle, Bar)


class Bands(NamedTuple):
    upper: float
    middle: float
    lower: float


class MacdValue(NamedTuple):
    macd: float
    signal: float
    hist: float


if sys.version_info >= (3, 13):  # pragma: no cover - exercised where available
    from math import fma as _fma
else:
    _SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's split of a double into two 26-bit halves

    def _fma(a: float, b: float, c: float) -> float:
        """``a * b + c`` rounded once, as TA-Lib 0.8 on an FMA CPU computes EMA, ATR: Dekker's exact
        product ``p + e``, then ``fsum`` (correctly rounded). Exact unless ``a * b`` over/underflows."""
        p, ta, tb = a * b, _SPLIT * a, _SPLIT * b
        ah, bh = ta - (ta - a), tb - (tb - b)
        al, bl = a - ah, b - bh
        e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
        if p == 0.0 or not math.isfinite(e):
            return p + c
        return math.fsum((p, e, c))


def _prices(candle: Candle | Bar, with_range: bool) -> tuple[float, float, float]:
    close = float(candle.close)
    high, low = (float(candle.high), float(candle.low)) if with_range else (close, close)
    if not (math.isfinite(close) and math.isfinite(high) and math.isfinite(low)):
        raise ValueError(f"candle opening at {candle.open_time_ms}: non-finite price refused")
    return high, low, close


def _rows(candles: Iterable[Candle | Bar], with_range: bool) -> list[tuple[int, float, float, float]]:
    """The candles as floats, checked finite and contiguous, before anything is changed."""
    rows: list[tuple[int, float, float, float]] = []
    for candle in candles:
        t = candle.open_time_ms
        if rows and t != rows[-1][0] + MINUTE_MS:
            raise IndicatorGap("seed", rows[-1][0], t)
        rows.append((t, *_prices(candle, with_range)))
    return rows


def contiguous_tail(candles: Sequence[CandleT]) -> Sequence[CandleT]:
    """The longest run at the end of ``candles`` (oldest first) with no hole: what to seed from."""
    start = len(candles) - 1
    while start > 0 and candles[start].open_time_ms == candles[start - 1].open_time_ms + MINUTE_MS:
        start -= 1
    return candles[max(start, 0) :]


def _at_least(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


class Indicator(ABC, Generic[T]):
    """One indicator over one symbol's closed candles.

    ``update(candle)`` returns the new value, or None until ``lookback + 1`` candles were seen;
    ``value`` is the current one, ``ready`` whether there is one. ``seed(candles)`` restarts
    from history (after checking all of it); ``reset()`` forgets everything.
    """

    __slots__ = ("_last_ms", "_n", "_value", "lookback", "period", "unstable")
    _with_range = False  # reads high and low, not only close

    def __init__(self, period: int, lookback: int, unstable: int = 0) -> None:
        # Read-only. lookback is TA-Lib's: the candles consumed before the first value.
        self.period, self.lookback, self.unstable = period, lookback, unstable
        self._last_ms: int | None = None
        self._n = 0
        self._value: T | None = None
        self._clear()

    @property
    def value(self) -> T | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None

    @property
    def last_open_ms(self) -> int | None:
        """Open time of the last candle taken; the next must open ``MINUTE_MS`` later."""
        return self._last_ms

    def check(self, open_time_ms: int) -> None:
        """Raise ``IndicatorGap`` unless a candle opening at ``open_time_ms`` may come next."""
        last = self._last_ms
        if last is not None and open_time_ms != last + MINUTE_MS:
            raise IndicatorGap(repr(self), last, open_time_ms)

    def update(self, candle: Candle | Bar) -> T | None:
        high, low, close = _prices(candle, self._with_range)
        self.check(candle.open_time_ms)
        return self._take(candle.open_time_ms, high, low, close)

    def seed(self, candles: Iterable[Candle | Bar]) -> T | None:
        """Start over from ``candles`` (oldest first, contiguous); the value after the last."""
        rows = _rows(candles, self._with_range)
        self.reset()
        for t, high, low, close in rows:
            self._take(t, high, low, close)
        return self._value

    def reset(self) -> None:
        self._last_ms, self._n, self._value = None, 0, None
        self._clear()

    def _take(self, open_ms: int, high: float, low: float, close: float) -> T | None:
        value = self._value = self._step(high, low, close)
        self._last_ms = open_ms
        self._n += 1
        return value

    @abstractmethod
    def _step(self, high: float, low: float, close: float) -> T | None:
        """Advance by one candle (index ``self._n``); never raises: inputs are already checked."""

    @abstractmethod
    def _clear(self) -> None:
        """Back to the state before the first candle."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.period})"


class SMA(Indicator[float]):
    """Simple moving average of closes, TA-Lib's running sum (``talib.SMA``)."""

    __slots__ = ("_total", "_window")

    def __init__(self, period: int) -> None:
        super().__init__(period, _at_least("period", period, 1) - 1)

    def _clear(self) -> None:
        self._total = 0.0
        self._window: deque[float] = deque(maxlen=self.period)

    def _step(self, high: float, low: float, close: float) -> float | None:
        window = self._window
        window.append(close)
        if len(window) < self.period:
            self._total += close
            return None
        total = self._total + close
        self._total = total - window[0]  # the close that leaves with the next candle
        return total / self.period


class EMA(Indicator[float]):
    """Exponential moving average of closes, k = 2 / (period + 1), SMA-seeded (``talib.EMA``)."""

    __slots__ = ("_k", "_prev", "_sum")

    def __init__(self, period: int, *, unstable: int = 0) -> None:
        self._k = 2.0 / (_at_least("period", period, 1) + 1)
        super().__init__(period, period - 1 + _at_least("unstable", unstable, 0), unstable)

    def _clear(self) -> None:
        self._sum = self._prev = 0.0

    def _step(self, high: float, low: float, close: float) -> float | None:
        i, period = self._n, self.period
        if i < period - 1:
            self._sum += close
            return None
        if i == period - 1:
            prev = (self._sum + close) / period
        elif period == 1:
            prev = close  # no smoothing: the input itself, as TA-Lib >= 0.7.1
        else:
            prev = _fma(close - self._prev, self._k, self._prev)
        self._prev = prev
        return prev if i >= self.lookback else None


class RSI(Indicator[float]):
    """Wilder's relative strength index of closes (``talib.RSI``), 0..100; 0.0 on a flat window.

    Average gain and loss: the mean of the first ``period`` changes, then
    ``(avg * (period - 1) + change) * (1 / period)``.
    """

    __slots__ = ("_gain", "_inv", "_loss", "_prev_close")

    def __init__(self, period: int = 14, *, unstable: int = 0) -> None:
        self._inv = 1.0 / _at_least("period", period, 2)
        super().__init__(period, period + _at_least("unstable", unstable, 0), unstable)

    def _clear(self) -> None:
        self._gain = self._loss = self._prev_close = 0.0

    def _step(self, high: float, low: float, close: float) -> float | None:
        i, period = self._n, self.period
        change = close - self._prev_close
        self._prev_close = close
        if i == 0:
            return None
        gain, loss = self._gain, self._loss
        if i > period:
            gain, loss = gain * (period - 1), loss * (period - 1)
        if change < 0.0:
            loss -= change
        else:
            gain += change
        if i >= period:
            gain, loss = gain * self._inv, loss * self._inv
        self._gain, self._loss = gain, loss
        if i < self.lookback:
            return None
        total = gain + loss
        return 100.0 * (gain / total) if total > 0.0 else 0.0


class ATR(Indicator[float]):
    """Wilder's average true range (``talib.ATR``): the mean of the first ``period`` true ranges
    (from the second candle), then ``fma(beta, atr, alpha * tr)``, beta = (period - 1) / period."""

    __slots__ = ("_alpha", "_atr", "_beta", "_prev_close", "_total")
    _with_range = True

    def __init__(self, period: int = 14, *, unstable: int = 0) -> None:
        self._beta = (_at_least("period", period, 1) - 1) / period
        self._alpha = 1.0 - self._beta
        super().__init__(period, period + _at_least("unstable", unstable, 0), unstable)

    def _clear(self) -> None:
        self._total = self._atr = self._prev_close = 0.0

    def _step(self, high: float, low: float, close: float) -> float | None:
        i, period = self._n, self.period
        prev_close, self._prev_close = self._prev_close, close
        if i == 0:
            return None
        true_range = high - low  # then the two distances to the previous close, in that order
        if (other := abs(prev_close - high)) > true_range:
            true_range = other
        if (other := abs(prev_close - low)) > true_range:
            true_range = other
        if i < period:
            self._total += true_range
            return None
        if i == period:
            atr = (self._total + true_range) / period
        else:
            atr = _fma(self._beta, self._atr, self._alpha * true_range)
        self._atr = atr
        return atr if i >= self.lookback else None


class BollingerBands(Indicator[Bands]):
    """SMA middle band ± ``nbdev`` population standard deviations (``talib.BBANDS``, matype 0).

    The deviation is TA-Lib 0.8's: sums of distances to a ``shift`` (a recent mean), so no
    large squares cancel, rebuilt from the window (O(period)) every 32 x period candles or when
    cancellation shows (variance < 1e-6 of the mean square; a rebuilt one < 1e-12 of it is 0).
    """

    __slots__ = ("_countdown", "_inv", "_shift", "_sum", "_sum1", "_sum2", "_window", "nbdev_down", "nbdev_up")

    def __init__(self, period: int = 20, nbdev_up: float = 2.0, nbdev_down: float = 2.0) -> None:
        self._inv = 1.0 / _at_least("period", period, 2)
        if not (math.isfinite(nbdev_up) and math.isfinite(nbdev_down)):
            raise ValueError("nbdev_up and nbdev_down must be finite")
        self.nbdev_up, self.nbdev_down = float(nbdev_up), float(nbdev_down)
        super().__init__(period, period - 1)

    def _clear(self) -> None:
        self._window: deque[float] = deque(maxlen=self.period)
        self._sum = self._sum1 = self._sum2 = self._shift = 0.0
        self._countdown = 32 * self.period

    def _step(self, high: float, low: float, close: float) -> Bands | None:
        window, inv = self._window, self._inv
        window.append(close)
        if self._n == 0:
            self._shift = close
        shift = self._shift
        d = close - shift
        total, sum1, sum2 = self._sum + close, self._sum1 + d, self._sum2 + d * d
        if len(window) < self.period:
            self._sum, self._sum1, self._sum2 = total, sum1, sum2
            return None
        mean1 = sum1 * inv
        variance = sum2 * inv - mean1 * mean1
        middle = total / self.period
        oldest = window[0]  # leaves with the next candle
        self._sum = total - oldest
        d = oldest - shift
        sum1, d = sum1 - d, d * d
        sum2 -= d
        self._countdown -= 1
        if variance < 0.000001 * (sum2 * inv) or d > 1000000.0 * sum2 or self._countdown <= 0:
            variance, sum1, sum2 = self._rebuild()
        self._sum1, self._sum2 = sum1, sum2
        # variance >= 0 here: a negative one always takes the rebuild, which floors it.
        deviation = math.sqrt(variance) if variance > 0.0 else 0.0
        if self.nbdev_up == self.nbdev_down:
            width = deviation * self.nbdev_up
            return Bands(middle + width, middle, middle - width)
        # Asymmetric: TA-Lib 0.8.1's upper band is one fused multiply-add, its lower band is not.
        return Bands(_fma(deviation, self.nbdev_up, middle), middle, middle - deviation * self.nbdev_down)

    def _rebuild(self) -> tuple[float, float, float]:
        window, inv = self._window, self._inv
        self._countdown = 32 * self.period
        total = 0.0
        for x in window:  # not sum(): Python >= 3.12 compensates it, TA-Lib does not
            total += x
        shift = self._shift = total * inv
        sum1 = sum2 = 0.0
        for x in window:
            d = x - shift
            sum1 += d
            sum2 += d * d
        mean1 = sum1 * inv
        variance = sum2 * inv - mean1 * mean1
        if variance < 0.000000000001 * (sum2 * inv):
            variance = 0.0
        d = window[0] - shift
        return variance, sum1 - d, sum2 - d * d

    def __repr__(self) -> str:
        return f"BollingerBands({self.period}, {self.nbdev_up:g}, {self.nbdev_down:g})"


class MACD(Indicator[MacdValue]):
    """MACD line (fast EMA - slow EMA), its signal EMA and the histogram (``talib.MACD``).

    As TA-Lib: fast > slow is swapped; both EMAs are SMA-seeded on windows ending at candle
    ``slow - 1`` (the fast one ignores the first ``slow - fast`` closes); the signal is seeded
    with the mean of the first ``signal`` MACD values. ``period`` is ``slow``.
    """

    __slots__ = ("_fast", "_fast_k", "_signal", "_signal_k", "_slow", "_slow_k", "_sum", "fast", "signal", "slow")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9, *, unstable: int = 0) -> None:
        fast, slow = sorted((_at_least("fast", fast, 2), _at_least("slow", slow, 2)))
        self.fast, self.slow, self.signal = fast, slow, _at_least("signal", signal, 1)
        self._fast_k, self._slow_k, self._signal_k = 2.0 / (fast + 1), 2.0 / (slow + 1), 2.0 / (signal + 1)
        lookback = slow - 1 + signal - 1 + 2 * _at_least("unstable", unstable, 0)
        super().__init__(slow, lookback, unstable)

    def _clear(self) -> None:
        self._fast = self._slow = self._signal = self._sum = 0.0

    def _step(self, high: float, low: float, close: float) -> MacdValue | None:
        i, slow = self._n, self.period
        if i < slow:
            self._sum += close
            if i >= slow - self.fast:
                self._fast += close
            if i < slow - 1:
                return None
            self._slow = self._sum / slow
            self._fast /= self.fast
            self._sum = 0.0  # from here on: the signal's seed
        else:
            self._fast = _fma(close - self._fast, self._fast_k, self._fast)
            self._slow = _fma(close - self._slow, self._slow_k, self._slow)
        first = slow - 1 + self.unstable  # the first MACD value the signal sees
        if i < first:
            return None
        macd = self._fast - self._slow
        seeded = first + self.signal - 1
        if i < seeded:
            self._sum += macd
            return None
        if i == seeded:
            signal = (self._sum + macd) / self.signal
        elif self.signal == 1:
            signal = macd
        else:
            signal = _fma(macd - self._signal, self._signal_k, self._signal)
        self._signal = signal
        return MacdValue(macd, signal, macd - signal) if i >= self.lookback else None

    def __repr__(self) -> str:
        return f"MACD({self.fast}, {self.period}, {self.signal})"


class IndicatorSet:
    """Indicators fed from one candle stream, all or none (keep typed references to read them)."""

    __slots__ = ("_members", "_with_range")

    def __init__(self, **members: Indicator[Any]) -> None:
        if not members:
            raise ValueError("an IndicatorSet needs at least one indicator")
        self._members = dict(members)
        self._with_range = any(m._with_range for m in members.values())

    @property
    def ready(self) -> bool:
        return all(m.ready for m in self._members.values())

    def values(self) -> dict[str, Any]:
        """Each member's current value by name, for display and logs."""
        return {name: m.value for name, m in self._members.items()}

    def update(self, candle: Candle | Bar) -> None:
        high, low, close = _prices(candle, self._with_range)
        t = candle.open_time_ms
        for member in self._members.values():
            member.check(t)
        for member in self._members.values():
            member._take(t, high, low, close)

    def seed(self, candles: Iterable[Candle | Bar]) -> None:
        rows = _rows(candles, self._with_range)
        for member in self._members.values():
            member.reset()
            for t, high, low, close in rows:
                member._take(t, high, low, close)

    def reset(self) -> None:
        for member in self._members.values():
            member.reset()
