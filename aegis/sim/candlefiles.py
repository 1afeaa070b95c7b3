"""Candle files on disk: which symbol a file holds, its format, and its rows read on demand.

Two formats, told apart by name and first line:
- the project's own ``*_<SYMBOL>_1m*.csv[.gz]`` with a header (``open_time_ms,open,high,low,
  close,volume[,close_time_ms,quote_volume,trades]``, see tests/fixtures/data/SOURCES.md);
- Binance's public kline dumps as users download them from data.binance.vision:
  ``BTCUSDT-1m-2024-01.csv`` / ``.zip`` (monthly) or ``BTCUSDT-1m-2024-01-15.csv`` / ``.zip``
  (daily), with or without the header row (Binance's older dumps have none), columns
  ``open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,
  taker_buy_quote_volume,ignore``. Open times in microseconds (spot dumps since 2025) are read
  as milliseconds.
Several files of one symbol (a month per file) are one series, in file-name order.
"""

from __future__ import annotations

import gzip
import re
import threading
import zipfile
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

BINANCE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
    "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)
_ALIASES = {"open_time_ms": "open_time", "trades": "count", "close_time_ms": "close_time"}
_OWN_NAME = re.compile(r"(?:^|_)([A-Z0-9]+)_1m", re.ASCII)
_DUMP_NAME = re.compile(r"^([A-Z0-9]+)-1m-\d{4}-\d{2}(?:-\d{2})?\.(?:csv|zip)$", re.ASCII)
_SUFFIXES = (".csv", ".csv.gz", ".zip")
_MICROSECONDS = 10**14  # an open time above this is in microseconds

# (open, high, low, close, volume, quote volume, trades, taker-buy base, taker-buy quote)
Row = tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal | None, int | None, Decimal | None, Decimal | None]


def symbol_of(path: Path) -> str | None:
    """``binance_usdm_BTCUSDT_1m.csv.gz`` or ``BTCUSDT-1m-2024-01.zip`` -> ``BTCUSDT``."""
    m = _DUMP_NAME.match(path.name) or _OWN_NAME.search(path.name)
    return m.group(1) if m else None


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where each field sits in one file's lines."""

    time: int | None
    ohlcv: tuple[int, int, int, int, int]
    quote: int | None
    trades: int | None
    taker_base: int | None
    taker_quote: int | None

    @classmethod
    def of(cls, names: list[str]) -> _Columns:
        col = {_ALIASES.get(n, n): i for i, n in enumerate(names)}
        o, h, lo, c, v = (col[x] for x in ("open", "high", "low", "close", "volume"))
        return cls(
            col.get("open_time"), (o, h, lo, c, v), col.get("quote_volume"), col.get("count"),
            col.get("taker_buy_volume"), col.get("taker_buy_quote_volume"),
        )


def _opt(fields: list[str], i: int | None) -> Decimal | None:
    return Decimal(fields[i]) if i is not None and fields[i] else None


class CsvRows:
    """Candle files kept as text lines and parsed row by row on demand: loading stays cheap
    (60k rows parse in ~1 s; reading them takes ~30 ms) and only replayed rows cost anything."""

    def __init__(self, files: list[list[str]]) -> None:
        self._lines: list[str] = []
        self._starts: list[int] = []  # index of each file's first row
        self._columns: list[_Columns] = []
        for lines in files:
            if not lines:
                continue
            first = lines[0].strip()
            has_header = not first[:1].isdigit()
            names = first.split(",") if has_header else list(BINANCE_COLUMNS)
            self._starts.append(len(self._lines))
            self._columns.append(_Columns.of(names))
            self._lines.extend(ln for ln in lines[1 if has_header else 0 :] if ln.strip())
        if not self._lines:
            raise ValueError("empty candle file")
        self._times: array[int] | None = None

    def __len__(self) -> int:
        return len(self._lines)

    def _cols(self, i: int) -> _Columns:
        return self._columns[bisect_right(self._starts, i) - 1]

    def row(self, i: int) -> Row:
        cols = self._cols(i)
        f = self._lines[i].split(",")
        o, h, lo, c, v = (Decimal(f[j]) for j in cols.ohlcv)
        trades = int(f[cols.trades]) if cols.trades is not None and f[cols.trades] else None
        return o, h, lo, c, v, _opt(f, cols.quote), trades, _opt(f, cols.taker_base), _opt(f, cols.taker_quote)

    def open_times(self) -> array[int] | None:
        """Every row's open time in ms (parsed once, on first use); None when a file has none."""
        if self._times is None:
            if any(c.time is None for c in self._columns):
                return None
            times = array("q")
            bounds = [*self._starts[1:], len(self._lines)]
            for start, end, cols in zip(self._starts, bounds, self._columns, strict=True):
                col = cols.time
                assert col is not None
                for line in self._lines[start:end]:
                    t = int(line.split(",", col + 1)[col])
                    times.append(t // 1000 if t > _MICROSECONDS else t)
            self._times = times
        return self._times


READ_CHUNK_CHARS = 1 << 20


def read_lines(path: Path) -> list[str]:
    """A CSV's lines (gzip, zip or plain, any newline style), decompressed and split ~1 MB at a time.

    No single step holds the GIL for long, so a worker thread reading a year of candles
    (~15 MB gzip, ~0.3 s) does not stall the event loop that keeps serving meanwhile.
    """
    if path.suffix == ".zip":
        return _zip_lines(path)
    lines: list[str] = []
    tail = ""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # text mode: universal newlines
        while chunk := f.read(READ_CHUNK_CHARS):
            parts = (tail + chunk).split("\n")
            tail = parts.pop()
            lines.extend(parts)
    if tail:
        lines.append(tail)
    return lines


def _zip_lines(path: Path) -> list[str]:
    """The lines of the one CSV inside a data.binance.vision zip (a month is ~4 MB of text)."""
    with zipfile.ZipFile(path) as archive:
        members = [n for n in archive.namelist() if n.endswith(".csv")]
        if len(members) != 1:
            raise ValueError(f"{path.name}: expected one .csv inside, found {members}")
        return archive.read(members[0]).decode("utf-8").splitlines()


_ROWS_CACHE: dict[tuple[Path, ...], CsvRows] = {}
_ROWS_LOCK = threading.Lock()  # one reader per series, whichever thread (loop or worker) asks first


def load_rows(paths: tuple[Path, ...]) -> CsvRows:
    """Read one symbol's candle files as one series; cached per process (files are immutable).

    Blocking: ``Market.load`` calls it in a worker thread at start-up; a call on the event
    loop is the fallback for a simulator used without ``start()``.
    """
    key = tuple(p.resolve() for p in paths)
    with _ROWS_LOCK:
        rows = _ROWS_CACHE.get(key)
        if rows is None:
            rows = _ROWS_CACHE[key] = CsvRows([read_lines(p) for p in key])
    return rows


def data_files(paths: tuple[Path, ...]) -> dict[str, tuple[Path, ...]]:
    """Candle files by symbol. A symbol's files from one directory (a month each) are one series
    in name order; a later path (file or directory) replaces an earlier one's series."""
    found: dict[str, tuple[Path, ...]] = {}
    for p in paths:
        files = sorted(f for f in p.iterdir() if f.name.endswith(_SUFFIXES)) if p.is_dir() else [p]
        grouped: dict[str, list[Path]] = {}
        for f in files:
            sym = symbol_of(f)
            if sym:
                grouped.setdefault(sym, []).append(f)
        found.update({sym: tuple(fs) for sym, fs in grouped.items()})
    return found
