"""Which candle files a backtest replays, and the span each symbol's files cover.

The simulator reads the same files (the packaged ones, then ``--data`` overriding a symbol), and
``aegis.sim.candlefiles`` caches them per process, so looking at them here costs one read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aegis.backtest.plan import CandleSpan
from aegis.config import ConfigError

__all__ = ["candle_spans"]


def candle_spans(symbols: Sequence[str], data: Path | None) -> dict[str, CandleSpan]:
    """Each symbol's first and last candle in the files; a symbol without files is refused."""
    from aegis.sim.candlefiles import data_files, load_rows
    from aegis.sim.config import DATA_DIR

    if data is not None and not data.is_dir():
        raise ConfigError(f"--data: not a directory: {str(data)!r}")
    files = data_files((DATA_DIR,) if data is None else (DATA_DIR, data))
    spans: dict[str, CandleSpan] = {}
    for symbol in symbols:
        paths = files.get(symbol)
        if paths is None:
            known = ", ".join(sorted(files)) or "none"
            raise ConfigError(
                f"--symbols: no candle files for {symbol} (found: {known}); add Binance kline CSVs "
                f"({symbol}-1m-YYYY-MM.csv or .zip from data.binance.vision) with --data DIR"
            )
        try:
            times = load_rows(paths).open_times()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--data: cannot read the candles of {symbol}: {exc}") from None
        if times is None or not len(times):
            raise ConfigError(f"--data: the candle files of {symbol} have no open times")
        spans[symbol] = CandleSpan(times[0], times[-1])
    return spans
