"""Compact candle history: exact round trip, bounded ring, footprint."""

from __future__ import annotations

import gzip
import tracemalloc
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.domain import Candle
from aegis.market.series import CandleSeries
from tests.fixtures import DATA as FIXTURE_DATA

MINUTE_MS = 60_000
DATA = FIXTURE_DATA / "binance_usdm_BTCUSDT_1m.csv.gz"


def _real_candles(limit: int) -> list[Candle]:
    rows: list[Candle] = []
    with gzip.open(DATA, "rt") as fh:
        next(fh)
        for line in fh:
            t, o, h, lo, c, v, ct, q, n = line.strip().split(",")
            rows.append(
                Candle("BTCUSDT", int(t), Decimal(o), Decimal(h), Decimal(lo), Decimal(c), Decimal(v), int(ct),
                       Decimal(q), int(n), Decimal(v), Decimal(q))
            )
            if len(rows) == limit:
                break
    return rows


def test_real_candles_round_trip_exactly() -> None:
    candles = _real_candles(500)
    series = CandleSeries("BTCUSDT", 1000)
    assert all(series.append(c) for c in candles)
    back = series.items()
    assert back == tuple(candles)
    assert [format(c.close, "f") for c in back] == [format(c.close, "f") for c in candles]
    assert series.closes() == [float(c.close) for c in candles]


decimals = st.decimals(min_value=0, max_value=10**9, places=3, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(decimals, decimals, st.integers(0, 10**6)), min_size=1, max_size=40), st.integers(1, 15))
def test_any_values_round_trip_and_history_stays_bounded(
    values: list[tuple[Decimal, Decimal, int]], cap: int
) -> None:
    """Values off the learned exponent (e.g. '1.5' after '2.000') are kept verbatim, never rounded."""
    series = CandleSeries("X", cap)
    candles = [
        Candle("X", i * MINUTE_MS, p, p, p, p, v, i * MINUTE_MS + MINUTE_MS - 1, p * v, n, v, p)
        for i, (p, v, n) in enumerate(values)
    ]
    for c in candles:
        series.append(c)
    expected = tuple(candles[-cap:])
    got = series.items()
    assert got == expected
    assert [str(c.volume) for c in got] == [str(c.volume) for c in expected]
    assert len(series) == min(cap, len(candles))
    assert series[-1] == candles[-1]


def test_older_or_duplicate_open_times_are_refused() -> None:
    first, second = _real_candles(2)
    series = CandleSeries("BTCUSDT", 10)
    assert series.append(second)
    assert not series.append(first)
    assert not series.append(second)
    assert len(series) == 1


def test_footprint_is_under_100_bytes_per_candle() -> None:
    candles = _real_candles(1000)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    series = [CandleSeries(f"S{i}", 1000) for i in range(20)]
    for s in series:
        for c in candles:
            s.append(c)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    per_candle = used / (20 * 1000)
    assert per_candle < 100, per_candle


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(["94001.20", "-0.00", "0.00", "1E-7", "1E+2", "0.0000001", "12.5", "7"]), min_size=1, max_size=30
    )
)
def test_the_newest_candle_reads_back_digit_for_digit(prices: list[str]) -> None:
    """The newest candle (what every evaluation reads) is the one rebuilt from the columns, signs,
    trailing zeros and exponent notation included, whatever path its values went in by."""
    series = CandleSeries("X", 5)
    for i, text in enumerate(prices):
        p = Decimal(text)
        series.append(Candle("X", i * MINUTE_MS, p, p, p, p, p, i * MINUTE_MS + MINUTE_MS - 1, p, i, p, p))
        assert repr(series.tail(1)) == repr(series.items()[-1:])
        assert repr(series[-1]) == repr(series.items()[-1])
