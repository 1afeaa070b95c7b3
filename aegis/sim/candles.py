"""Candle sources: real Binance 1m candles replayed, or a seeded synthetic walk.

Every candle is a pure function of (symbol, open time), so REST klines for any past range
agree with what the stream published, before and after clock jumps, and history exists long
before the simulator started (a client warms up with 1500 bars).
"""

from __future__ import annotations

import gzip
import math
import re
import threading
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from aegis.sim.clock import MINUTE_MS
from aegis.sim.symbols import SymbolSpec

__all__ = ["MINUTE_MS", "Candle", "CandleSource", "CsvRows", "ReplaySource", "SyntheticSource"]
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
    at both turning points and covers every minute of any epoch."""

    def __init__(self, rows: CsvRows, key: int, step: Decimal) -> None:
        if not len(rows):
            raise ValueError("empty candle file")
        self._rows = rows
        self._key = key
        self._step = step
        self.candle = lru_cache(maxsize=16384)(self._candle)

    def _candle(self, open_ms: int) -> Candle:
        n = len(self._rows)
        k = open_ms // MINUTE_MS
        i = k % (2 * n)
        forward = i < n
        o, h, lo, c, v, quote, trades = self._rows.row(i if forward else 2 * n - 1 - i)
        if not forward:
            o, c = c, o
        mid = (o + h + lo + c) / 4
        if quote is None:
            quote = (v * mid).quantize(_Q5)
        if trades is not None:
            taker_b = (v / 2).quantize(self._step, rounding=ROUND_DOWN) if self._step else v / 2
            taker_q = (quote / 2).quantize(_Q5)
        else:
            trades, taker_b, taker_q = _derived(self._key, k, v, mid, self._step)
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


_FILE_SYMBOL = re.compile(r"(?:^|_)([A-Z0-9]+)_1m", re.ASCII)


def symbol_of(path: Path) -> str | None:
    """``binance_usdm_BTCUSDT_1m.csv.gz`` -> ``BTCUSDT``."""
    m = _FILE_SYMBOL.search(path.name)
    return m.group(1) if m else None


Row = tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal | None, int | None]


class CsvRows:
    """A candle file kept as text lines and parsed row by row on demand: loading stays cheap
    (60k rows parse in ~1 s; reading them takes ~30 ms) and only replayed rows cost anything."""

    def __init__(self, lines: list[str]) -> None:
        if not lines:
            raise ValueError("empty candle file")
        header = lines[0].strip().split(",")
        self._lines = [ln for ln in lines[1:] if ln.strip()]
        col = {name: i for i, name in enumerate(header)}
        self._ohlcv = tuple(col[x] for x in ("open", "high", "low", "close", "volume"))
        self._quote = col.get("quote_volume")
        self._trades = col.get("trades")

    def __len__(self) -> int:
        return len(self._lines)

    def row(self, i: int) -> Row:
        f = self._lines[i].split(",")
        o, h, lo, c, v = (Decimal(f[j]) for j in self._ohlcv)
        quote = Decimal(f[self._quote]) if self._quote is not None and f[self._quote] else None
        trades = int(f[self._trades]) if self._trades is not None and f[self._trades] else None
        return o, h, lo, c, v, quote, trades


READ_CHUNK_CHARS = 1 << 20


def read_lines(path: Path) -> list[str]:
    """A CSV's lines (gzip or plain, any newline style), decompressed and split ~1 MB at a time.

    No single step holds the GIL for long, so a worker thread reading a year of candles
    (~15 MB gzip, ~0.3 s) does not stall the event loop that keeps serving meanwhile.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    lines: list[str] = []
    tail = ""
    with opener(path, "rt", encoding="utf-8") as f:  # text mode: universal newlines
        while chunk := f.read(READ_CHUNK_CHARS):
            parts = (tail + chunk).split("\n")
            tail = parts.pop()
            lines.extend(parts)
    if tail:
        lines.append(tail)
    return lines


_ROWS_CACHE: dict[Path, CsvRows] = {}
_ROWS_LOCK = threading.Lock()  # one reader per file, whichever thread (loop or worker) asks first


def load_rows(path: Path) -> CsvRows:
    """Read a shared/data CSV (gzip or plain); cached per process since files are immutable.

    Blocking: ``Market.load`` calls it in a worker thread at start-up; a call on the event
    loop is the fallback for a simulator used without ``start()``.
    """
    path = path.resolve()
    with _ROWS_LOCK:
        rows = _ROWS_CACHE.get(path)
        if rows is None:
            rows = _ROWS_CACHE[path] = CsvRows(read_lines(path))
    return rows


def data_files(paths: tuple[Path, ...]) -> dict[str, Path]:
    """Candle files by symbol; later paths override earlier ones."""
    found: dict[str, Path] = {}
    for p in paths:
        files = sorted(p.glob("*.csv*")) if p.is_dir() else [p]
        for f in files:
            sym = symbol_of(f)
            if sym:
                found[sym] = f
    return found
