"""Candle sources: real Binance 1m candles replayed, or a seeded synthetic walk (files: candlefiles.py).

Every candle is a pure function of (symbol, open time), so REST klines for any past range
agree with what the stream published, before and after clock jumps, and history exists long
before the simulator started (a client warms up with 1500 bars).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Protocol

from aegis.sim.candlefiles import CsvRows, Row
from aegis.sim.clock import MINUTE_MS
from aegis.sim.symbols import ZERO, SymbolSpec

__all__ = ["MINUTE_MS", "Candle", "CandleSource", "ReplaySource", "SyntheticSource"]
_M64 = (1 << 64) - 1
_Q5 = Decimal("0.00001")


@dataclass(frozen=True, slots=True)
class Candle:
    """One 1-minute bar. ``trades`` and taker volumes are derived when the source lacks them."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    taker_base: Decimal
    taker_quote: Decimal


class CandleSource(Protocol):
    def candle(self, open_ms: int) -> Candle: ...


def _mix(x: int) -> int:
    """splitmix64: a fast, well-spread integer hash (deterministic across runs and platforms)."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _unit(key: int, a: int, b: int) -> float:
    """Deterministic noise in [-1, 1) for (key, a, b)."""
    return _mix(key ^ _mix((a << 40) ^ (b & ((1 << 40) - 1)))) / 2.0**63 - 1.0


def symbol_key(symbol: str, seed: int) -> int:
    k = seed & _M64
    for ch in symbol.encode():
        k = _mix(k ^ ch)
    return k


def _derived(key: int, k: int, volume: Decimal, mid: Decimal, step: Decimal) -> tuple[int, Decimal, Decimal]:
    """Trade count and taker-buy volumes for sources that only carry OHLCV."""
    trades = max(1, int(volume * mid / 2000) + 1)
    share = Decimal(str(round(0.5 + 0.15 * _unit(key, 7, k), 4)))
    taker = (volume * share).quantize(step, rounding=ROUND_DOWN) if step else volume * share
    return trades, taker, (taker * mid).quantize(_Q5)


class ReplaySource:
    """Real candles replayed forwards then backwards (ping-pong), so the series is continuous
    at both turning points and covers every minute of any epoch.

    By default minute k of any epoch shows row k mod 2n (forwards, then backwards). ``aligned``
    puts each row at its own open time instead (a backtest of January 2024 sees January 2024);
    a minute missing from the files inside their span is a flat candle at the last close with no
    volume (what Binance shows for a minute without trades), and outside the span the series
    ping-pongs from the first row on."""

    def __init__(self, rows: CsvRows, key: int, step: Decimal, *, aligned: bool = False) -> None:
        if not len(rows):
            raise ValueError("empty candle file")
        self._rows = rows
        self._key = key
        self._step = step
        self._times = rows.open_times() if aligned else None
        if aligned and self._times is None:
            raise ValueError("aligned replay needs open times in every candle file")
        self.candle = lru_cache(maxsize=16384)(self._candle)

    def _candle(self, open_ms: int) -> Candle:
        n = len(self._rows)
        k = open_ms // MINUTE_MS
        j = k
        times = self._times
        if times is not None:
            if times[0] <= open_ms <= times[-1]:
                i = bisect_right(times, open_ms) - 1
                if times[i] != open_ms:
                    close = self._rows.row(i)[3]
                    return Candle(k * MINUTE_MS, close, close, close, close, ZERO, ZERO, 0, ZERO, ZERO)
                return self._from_row(k, self._rows.row(i), forward=True)
            j = k - times[0] // MINUTE_MS
        i = j % (2 * n)
        forward = i < n
        return self._from_row(k, self._rows.row(i if forward else 2 * n - 1 - i), forward=forward)

    def _from_row(self, k: int, row: Row, *, forward: bool) -> Candle:
        o, h, lo, c, v, quote, trades, taker_b, taker_q = row
        if not forward:
            o, c = c, o
        mid = (o + h + lo + c) / 4
        if quote is None:
            quote = (v * mid).quantize(_Q5)
        if trades is None:
            trades, taker_b, taker_q = _derived(self._key, k, v, mid, self._step)
        elif taker_b is None or taker_q is None:
            taker_b = (v / 2).quantize(self._step, rounding=ROUND_DOWN) if self._step else v / 2
            taker_q = (quote / 2).quantize(_Q5)
        return Candle(k * MINUTE_MS, o, h, lo, c, v, quote, max(trades, 1), taker_b, taker_q)


class SyntheticSource:
    """A seeded multi-scale random walk (value-noise sum, Brownian-like), O(1) per candle."""

    OCTAVES = 14
    SIGMA = 0.0006  # per-minute log-return scale, close to BTC's

    def __init__(self, spec: SymbolSpec, seed: int) -> None:
        self._spec = spec
        self._key = symbol_key(spec.symbol, seed)
        self._tick = spec.tick or Decimal(1).scaleb(-spec.price_precision)
        self._step = spec.step or Decimal(1).scaleb(-spec.quantity_precision)
        self._base = self._base_price(spec)
        self._amps = [self.SIGMA * math.sqrt(1 << j) * 0.6 for j in range(self.OCTAVES)]
        self.candle = lru_cache(maxsize=16384)(self._candle)
        # consecutive minutes share lattice points on every coarse octave and a boundary price
        self._lattice = lru_cache(maxsize=65536)(self._lattice_value)
        self._price = lru_cache(maxsize=4096)(self._price_at)  # type: ignore[method-assign]

    def _lattice_value(self, octave: int, i: int) -> float:
        return _unit(self._key, octave, i)

    @staticmethod
    def _base_price(spec: SymbolSpec) -> float:
        tick = float(spec.tick) if spec.tick else 10.0**-spec.price_precision
        base = max(float(spec.min_price) * 50, tick * 20000)
        if spec.max_price:
            base = min(base, float(spec.max_price) / 10)
        return base

    def _log(self, k: int) -> float:
        x = 0.0
        lattice = self._lattice
        for j, amp in enumerate(self._amps):
            i, r = divmod(k, 1 << j)
            a = lattice(j, i)
            if r:
                b = lattice(j, i + 1)
                a += (b - a) * r / (1 << j)
            x += amp * a
        return x

    def _price(self, k: int) -> Decimal:
        return self._price_at(k)

    def _price_at(self, k: int) -> Decimal:
        p = Decimal(repr(self._base * math.exp(self._log(k))))
        q = (p / self._tick).to_integral_value(rounding=ROUND_HALF_EVEN) * self._tick
        return max(q.quantize(self._tick), self._tick)

    def _candle(self, open_ms: int) -> Candle:
        k = open_ms // MINUTE_MS
        o, c = self._price(k), self._price(k + 1)
        up = abs(_unit(self._key, 101, k)) * self.SIGMA
        down = abs(_unit(self._key, 102, k)) * self.SIGMA
        hi = (max(o, c) * Decimal(repr(1 + up)) / self._tick).to_integral_value(
            rounding=ROUND_CEILING
        ) * self._tick
        lo = (min(o, c) * Decimal(repr(1 - down)) / self._tick).to_integral_value(
            rounding=ROUND_FLOOR
        ) * self._tick
        lo = max(lo, self._tick)
        mid = (o + hi + lo + c) / 4
        vol_units = max(
            1, int(150_000 / float(mid) * (0.5 + abs(_unit(self._key, 103, k))) / float(self._step))
        )
        volume = (self._step * vol_units).quantize(self._step)
        trades, taker_b, taker_q = _derived(self._key, k, volume, mid, self._step)
        return Candle(
            k * MINUTE_MS,
            o,
            hi.quantize(self._tick),
            lo.quantize(self._tick),
            c,
            volume,
            (volume * mid).quantize(_Q5),
            trades,
            taker_b,
            taker_q,
        )
