"""Real candle files are read at start-up in a worker thread, never on the event loop by a request."""

from __future__ import annotations

import gzip
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

import aegis.sim.market
from aegis.sim import candlefiles
from aegis.sim.candlefiles import CsvRows, load_rows, read_lines
from aegis.sim.candles import MINUTE_MS
from aegis.sim.config import SimConfig
from aegis.sim.server import SimServer
from aegis.sim.simulator import Simulator
from tests.sim.rest_helpers import Raw

START = 1_795_000_030_000
SLOW_READ_S = 0.15  # stands in for a year of --data candles (~0.3 s to read on a laptop)


async def test_first_orders_do_not_freeze_the_loop_reading_candles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file is read in a worker thread while the server starts, none by a request on the loop.

    Which thread read what, and when, is the evidence; a wall-time lag measure would depend on
    how busy the machine is."""
    loop_thread = threading.get_ident()
    reads: list[tuple[str, bool]] = []

    def slow_load_rows(paths: tuple[Path, ...]) -> CsvRows:
        reads.append((paths[0].name, threading.get_ident() == loop_thread))
        time.sleep(SLOW_READ_S)  # a year of candles: the loop must not be the one waiting
        return load_rows(paths)

    monkeypatch.setattr(aegis.sim.market, "load_rows", slow_load_rows)
    async with SimServer(SimConfig(start_ms=START, rate_limits=False)) as server:
        read_at_start = list(reads)
        raw = Raw(server)
        try:
            for symbol, qty in (("BTCUSDT", "0.01"), ("ETHUSDT", "0.1")):
                status, body, _ = await raw.order(symbol=symbol, side="BUY", type="MARKET", quantity=qty)
                assert status == 200, body
        finally:
            await raw.close()
    assert sorted(name for name, _ in read_at_start) == [
        "binance_usdm_BTCUSDT_1m.csv.gz",
        "binance_usdm_ETHUSDT_1m.csv.gz",
    ]
    assert reads == read_at_start, "the orders read nothing more"
    assert not any(on_loop for _, on_loop in reads)


def _write(path: Path, text: str) -> None:
    path.write_bytes(gzip.compress(text.encode()) if path.suffix == ".gz" else text.encode())


async def test_preloaded_candles_are_the_ones_a_lazy_read_gives(tmp_path: Path) -> None:
    rows = ["open_time_ms,open,high,low,close,volume,close_time_ms,quote_volume,trades"]
    for i in range(7):
        o = 0.5 + i / 100
        rows.append(
            f"{1662336000000 + i * MINUTE_MS},{o:.4f},{o + 0.01:.4f},{o - 0.01:.4f},{o + 0.005:.4f},"
            f"{100 + i}.0,0,{50 + i}.00000,{i + 1}"
        )
    _write(tmp_path / "binance_usdm_XRPUSDT_1m.csv.gz", "\r\n".join(rows) + "\r\n\r\n")  # CRLF, blank tail
    _write(tmp_path / "binance_usdm_NOSUCHUSDT_1m.csv", "\n".join(rows))  # not in exchangeInfo: ignored
    config = SimConfig(start_ms=START, data_paths=(tmp_path,))
    started, lazy = Simulator(config), Simulator(config)
    await started.start()
    try:
        assert {"BTCUSDT", "ETHUSDT", "XRPUSDT"} <= set(started.market._sources)
        assert "NOSUCHUSDT" not in started.market._sources
        for symbol in ("BTCUSDT", "ETHUSDT", "XRPUSDT"):
            t0 = START - START % MINUTE_MS
            for k in (*range(-20, 20), 10_000, 70_000):  # both directions of the ping-pong replay
                at = t0 + k * MINUTE_MS
                assert started.market.candle(symbol, at) == lazy.market.candle(symbol, at)
        xrp = lazy.market.candle("XRPUSDT", (START // MINUTE_MS) // 14 * 14 * MINUTE_MS)
        assert xrp.open == Decimal("0.5000") and xrp.trades == 1
    finally:
        await started.stop()


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_chunked_read_splits_lines_like_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, newline: str
) -> None:
    text = newline.join(f"{i},{'x' * (i % 11)}" for i in range(200)) + newline
    path = tmp_path / f"binance_usdm_ABCUSDT_1m{suffix}"
    _write(path, text)
    expected = text.splitlines()
    for chunk in (1, 7, 64, 1 << 20):  # boundaries inside lines, inside CRLF, and none at all
        monkeypatch.setattr(candlefiles, "READ_CHUNK_CHARS", chunk)
        assert read_lines(path) == expected
