"""Compact, bounded history of one symbol's closed candles.

Binance's prices and quantities are fixed-point at each symbol's tick and step, so a candle
is stored as ten 64-bit integers (mantissas at one exponent per field group) in parallel
ring buffers: about 80 bytes a candle instead of ~630 for an object with five Decimals.
Reading back gives the exact Decimals (same digits, same trailing zeros) that came in;
a value that does not fit its group's exponent is kept verbatim on the side, never rounded.
"""

from __future__ import annotations

from array import array
from decimal import Decimal
from typing import Final

from aegis.domain import MINUTE_MS, Candle

# Field order in the ring buffers; groups share one decimal exponent.
_PRICE = ("open", "high", "low", "close")
_QTY = ("volume", "taker_buy_base")
_QUOTE = ("quote_volume", "taker_buy_quote")
_DECIMAL_FIELDS: Final = (*_PRICE, *_QTY, *_QUOTE)
_GROUP_OF: Final = {**dict.fromkeys(_PRICE, 0), **dict.fromkeys(_QTY, 1), **dict.fromkeys(_QUOTE, 2)}
_FIELD_GROUPS: Final = tuple((name, _GROUP_OF[name]) for name in _DECIMAL_FIELDS)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_OFF_SCALE: Final = _INT64_MIN  # sentinel mantissa: the exact value lives in ``_exact``
_FLOAT_EXACT: Final = 2**53  # integers up to this are exact floats


def _exponent(value: Decimal) -> int:
    exp = value.as_tuple().exponent
    return exp if isinstance(exp, int) else 0


def _plain(value: Decimal) -> tuple[int, int] | None:
    """(exponent, mantissa) of a finite Decimal that prints without exponent notation (a price or a
    quantity always does), read off its text: what ``as_tuple`` and ``scaleb`` give, at a third of
    the cost. None for anything else (NaN, infinities, ``1E+2``, ``1E-7``)."""
    text = str(value)
    if "E" in text or not value.is_finite():
        return None
    point = text.find(".")
    if point < 0:
        return 0, int(text)
    return point + 1 - len(text), int(text.replace(".", "", 1))


class CandleSeries:
    """Closed candles oldest first; appends only strictly newer open times; drops the oldest when full."""

    __slots__ = ("_cap", "_cols", "_exact", "_exps", "_n", "_newest", "_open", "_start", "_symbol", "_trades", "holes")

    def __init__(self, symbol: str, max_candles: int) -> None:
        if max_candles < 1:
            raise ValueError("max_candles must be >= 1")
        self._symbol = symbol
        self._cap = max_candles
        self._open = array("q")
        self._trades = array("q")
        self._cols = [array("q") for _ in _DECIMAL_FIELDS]
        self._exps: list[int | None] = [None, None, None]
        self._exact: dict[tuple[int, int], Decimal | int] = {}
        self._start = 0
        self._n = 0
        self._newest: Candle | None = None  # the newest candle as read back (strategy, equity, context)
        self.holes: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return self._n

    @property
    def first_open_ms(self) -> int | None:
        return self._open[self._start] if self._n else None

    @property
    def last_open_ms(self) -> int | None:
        return self._open[self._slot(self._n - 1)] if self._n else None

    def append(self, candle: Candle) -> bool:
        last = self.last_open_ms
        if last is not None and candle.open_time_ms <= last:
            return False
        if self._n == self._cap:
            self._evict_oldest()
        slot = self._next_slot()
        exact = self._write(slot, candle)
        self._n += 1
        # Reading it back would give an equal candle, field by field: keep the one we have.
        self._newest = candle if exact and candle.symbol == self._symbol and type(candle.trades) is int else None
        return True

    def __getitem__(self, index: int) -> Candle:
        if not -self._n <= index < self._n:
            raise IndexError(index)
        return self._read(self._slot(index % self._n))

    def items(self) -> tuple[Candle, ...]:
        return tuple(self._read(self._slot(i)) for i in range(self._n))

    def tail(self, count: int) -> tuple[Candle, ...]:
        """The newest ``count`` candles (fewer if the series is shorter), oldest first."""
        if count < 1 or not self._n:
            return ()
        start = max(0, self._n - count)
        if start == self._n - 1:
            return (self._last(),)  # the context and the equity sample, every candle
        return (*(self._read(self._slot(i)) for i in range(start, self._n - 1)), self._last())

    def _last(self) -> Candle:
        """The newest candle, read back once per append: every closed candle asks for it a few times."""
        newest = self._newest
        if newest is None:
            newest = self._newest = self._read(self._slot(self._n - 1))
        return newest

    def closes(self) -> list[float]:
        """Close prices as floats, for indicators (they decide; they never size an order)."""
        col, exp = self._cols[_DECIMAL_FIELDS.index("close")], self._exps[0] or 0
        # Dividing by an exact power of ten rounds once, so 199556 / 10.0 == 19955.6 exactly as float().
        divisor, factor = (10.0**-exp, 1.0) if exp < 0 else (1.0, 10.0**exp)
        return [
            float(self._exact[(self._open[s], 3)]) if col[s] == _OFF_SCALE else col[s] * factor / divisor
            for s in (self._slot(i) for i in range(self._n))
        ]

    def tail_prices(self, count: int) -> list[tuple[int, float, float, float, float]]:
        """(open_ms, open, high, low, close) of the newest ``count`` candles, oldest first, the
        prices as ``float(Decimal)`` gives them: for the backtest's chart, without building candles."""
        exp = self._exps[0] or 0
        divisor, factor = (10.0**-exp, 1.0) if exp < 0 else (1.0, 10.0**exp)
        exact_power = -22 <= exp <= 22  # 10**|exp| is an exact float: one rounding, as float() does
        rows: list[tuple[int, float, float, float, float]] = []
        for i in range(max(0, self._n - count), self._n):
            slot = self._slot(i)
            open_ms = self._open[slot]
            prices = []
            for field in range(4):
                mantissa = self._cols[field][slot]
                if exact_power and mantissa != _OFF_SCALE and -_FLOAT_EXACT <= mantissa <= _FLOAT_EXACT:
                    prices.append(mantissa * factor / divisor)
                elif mantissa == _OFF_SCALE:
                    prices.append(float(self._exact[(open_ms, field)]))
                else:
                    prices.append(float(Decimal(mantissa).scaleb(exp)))
            rows.append((open_ms, prices[0], prices[1], prices[2], prices[3]))
        return rows

    # --- ring buffer -------------------------------------------------------------------

    def _slot(self, index: int) -> int:
        return (self._start + index) % self._cap

    def _next_slot(self) -> int:
        slot = self._slot(self._n)
        if slot == len(self._open):  # still growing towards capacity
            self._open.append(0)
            self._trades.append(0)
            for col in self._cols:
                col.append(0)
        return slot

    def _evict_oldest(self) -> None:
        open_ms = self._open[self._start]
        for field in range(-1, len(_DECIMAL_FIELDS)):
            self._exact.pop((open_ms, field), None)
        self._start = (self._start + 1) % self._cap
        self._n -= 1

    def _write(self, slot: int, candle: Candle) -> bool:
        """Store ``candle`` in ``slot``; True if ``_read`` rebuilds it field for field (always, but
        for a negative zero, which comes back unsigned)."""
        exact = True
        open_ms = candle.open_time_ms
        self._open[slot] = open_ms
        self._trades[slot] = candle.trades
        if candle.close_time_ms != open_ms + MINUTE_MS - 1:
            self._exact[(open_ms, -1)] = candle.close_time_ms
        exps, cols = self._exps, self._cols
        for i, (name, group) in enumerate(_FIELD_GROUPS):
            value: Decimal = getattr(candle, name)
            plain = _plain(value)
            exp = exps[group]
            if exp is None:
                exp = exps[group] = plain[0] if plain is not None else _exponent(value)
            if plain is not None:
                own, mantissa = plain
            else:
                own = _exponent(value)
                mantissa = int(value.scaleb(-exp)) if own == exp and value.is_finite() else 0
            if own == exp and _INT64_MIN < mantissa <= _INT64_MAX and (plain is not None or value.is_finite()):
                cols[i][slot] = mantissa
                if not mantissa and value.is_signed():
                    exact = False  # -0 comes back as 0
            else:
                cols[i][slot] = _OFF_SCALE
                self._exact[(open_ms, i)] = value  # comes back as this very Decimal
        return exact

    def _read(self, slot: int) -> Candle:
        open_ms = self._open[slot]
        values: list[Decimal] = []
        for i, name in enumerate(_DECIMAL_FIELDS):
            mantissa = self._cols[i][slot]
            if mantissa == _OFF_SCALE:
                exact = self._exact[(open_ms, i)]
                values.append(exact if isinstance(exact, Decimal) else Decimal(exact))
            else:
                values.append(Decimal(mantissa).scaleb(self._exps[_GROUP_OF[name]] or 0))
        close_ms = self._exact.get((open_ms, -1), open_ms + MINUTE_MS - 1)
        o, h, lo, c, v, tbb, q, tbq = values
        return Candle(
            symbol=self._symbol,
            open_time_ms=open_ms,
            open=o,
            high=h,
            low=lo,
            close=c,
            volume=v,
            close_time_ms=int(close_ms),
            quote_volume=q,
            trades=self._trades[slot],
            taker_buy_base=tbb,
            taker_buy_quote=tbq,
        )
