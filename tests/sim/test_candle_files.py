"""--data takes Binance's public kline dumps (data.binance.vision) as users download them."""

from __future__ import annotations

import io
import zipfile
from decimal import Decimal
from pathlib import Path

from aegis.sim.__main__ import parse_args
from aegis.sim.candlefiles import data_files, symbol_of
from aegis.sim.candles import MINUTE_MS
from aegis.sim.config import SimConfig
from aegis.sim.server import SimServer
from aegis.sim.simulator import Simulator
from tests.sim.rest_helpers import Raw

JAN = 1_704_067_200_000  # 2024-01-01T00:00Z
FEB = 1_706_745_600_000  # 2024-02-01T00:00Z
HEADER = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore"


def _line(t: int, i: int, micro: bool = False) -> str:
    o = Decimal("0.6100") + Decimal(i) / 10_000
    stamp = t * 1000 if micro else t
    return f"{stamp},{o},{o + Decimal('0.0010')},{o - Decimal('0.0010')},{o + Decimal('0.0005')},{1000 + i}.0,{t + 59_999},{600 + i}.50000,{10 + i},{400 + i}.0,{240 + i}.25000,0"


def _dumps(tmp: Path) -> tuple[list[int], list[int]]:
    """A January file with a header and a one-minute gap, a February zip without a header."""
    jan = [JAN + i * MINUTE_MS for i in range(5) if i != 2]
    feb = [FEB + i * MINUTE_MS for i in range(3)]
    (tmp / "XRPUSDT-1m-2024-01.csv").write_text("\n".join([HEADER] + [_line(t, i) for i, t in enumerate(jan)]) + "\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("XRPUSDT-1m-2024-02.csv", "\r\n".join(_line(t, 10 + i, micro=True) for i, t in enumerate(feb)))
    (tmp / "XRPUSDT-1m-2024-02.zip").write_bytes(buf.getvalue())
    (tmp / "README.txt").write_text("not a candle file")
    return jan, feb


def test_dump_names_and_series(tmp_path: Path) -> None:
    assert symbol_of(Path("BTCUSDT-1m-2024-01.zip")) == "BTCUSDT"
    assert symbol_of(Path("BTCUSDT-1m-2024-01-15.csv")) == "BTCUSDT"
    assert symbol_of(Path("binance_usdm_ETHUSDT_1m.csv.gz")) == "ETHUSDT"
    assert symbol_of(Path("BTCUSDT-5m-2024-01.zip")) is None, "only 1-minute candles"
    _dumps(tmp_path)
    assert data_files((tmp_path,)) == {
        "XRPUSDT": (tmp_path / "XRPUSDT-1m-2024-01.csv", tmp_path / "XRPUSDT-1m-2024-02.zip")
    }


async def test_aligned_replay_shows_each_candle_at_its_own_time(tmp_path: Path) -> None:
    _, feb = _dumps(tmp_path)
    sim = Simulator(SimConfig(start_ms=FEB + 10 * MINUTE_MS, data_paths=(tmp_path,), replay_aligned=True))
    await sim.start()
    try:
        first = sim.market.candle("XRPUSDT", JAN)
        assert (first.open, first.close, first.volume, first.trades) == (Decimal("0.6100"), Decimal("0.6105"), Decimal("1000.0"), 10)
        assert (first.taker_base, first.taker_quote, first.quote_volume) == (Decimal("400.0"), Decimal("240.25000"), Decimal("600.50000"))
        gap = sim.market.candle("XRPUSDT", JAN + 2 * MINUTE_MS)
        assert gap.open == gap.close == sim.market.candle("XRPUSDT", JAN + MINUTE_MS).close and gap.volume == 0
        assert sim.market.candle("XRPUSDT", JAN + 3 * MINUTE_MS).open == Decimal("0.6102")  # row 2 of the file
        assert sim.market.candle("XRPUSDT", FEB).open == Decimal("0.6110"), "microsecond times read as ms"
        assert sim.market.candle("XRPUSDT", JAN + 4 * MINUTE_MS).volume == Decimal("1003.0")
        between = sim.market.candle("XRPUSDT", JAN + 9 * MINUTE_MS)
        assert between.volume == 0, "a month missing inside the span is flat, never invented"
        async with SimServer(SimConfig(start_ms=FEB + 10 * MINUTE_MS, data_paths=(tmp_path,), replay_aligned=True)) as server:
            raw = Raw(server)
            _, rows, _ = await raw.public("/fapi/v1/klines", symbol="XRPUSDT", interval="1m", startTime=FEB, limit=3)
            await raw.close()
        assert [r[0] for r in rows] == feb and rows[0][1] == "0.6110"
    finally:
        await sim.stop()


async def test_unaligned_replay_still_serves_any_epoch_from_a_dump(tmp_path: Path) -> None:
    _dumps(tmp_path)
    sim = Simulator(SimConfig(start_ms=JAN, data_paths=(tmp_path,)))
    n = 7  # rows in the two files
    k0 = 1_800_000_000_000 // MINUTE_MS // (2 * n) * (2 * n)
    assert sim.market.candle("XRPUSDT", k0 * MINUTE_MS).open == Decimal("0.6100")


def test_the_cli_takes_dumps_a_fill_model_and_closed_only(tmp_path: Path) -> None:
    config, _, _ = parse_args(["--data", str(tmp_path), "--fill-model", "ticks:2", "--closed-klines-only", "--aligned"])
    assert config.data_paths == (tmp_path,) and config.fill_model == "ticks:2"
    assert not config.partial_klines and config.replay_aligned
