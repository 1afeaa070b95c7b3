"""Resident memory of 300 symbols x 1000 candles held by the market feed, against holding none.

Run: ``.venv/bin/python -m bench.bench_footprint`` (or ``make bench``).

Two child processes run the same engine path against one simulator process: MarketFeed
warm-up over loopback REST (ccxt transport, msgspec parse, Decimal Candles), the kline
streams over WebSocket, the write queue, the StateStore. One keeps the candles (the real
StateStore); the other's store counts them and drops them, so both did the same work and
differ only in what they hold. Each reports its resident set size after a full GC; the
difference divided by the number of candles is the cost of holding one. The store's own
account (the bytes of its int64 columns) is printed alongside.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterable

from loguru import logger

from aegis.domain import Candle
from aegis.state.store import StateStore
from bench.machine import describe
from bench.sim_process import sim_process

SYMBOLS = int(os.environ.get("BENCH_FOOTPRINT_SYMBOLS", "300"))
HISTORY = 1000
TARGET_BYTES = 100
ROUNDS = 2  # RSS after a burst varies by a few MiB run to run; the lowest of each side is reported


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class DroppingStore(StateStore):
    """Same API and work up to the store; keeps nothing."""

    async def add_candles(self, symbol: str, candles: Iterable[Candle]) -> int:
        return sum(1 for _ in candles)


def column_bytes(state: StateStore, symbols: Iterable[str]) -> int:
    """Bytes allocated by the int64 columns of every series (what the store says it holds)."""
    total = 0
    for symbol in symbols:
        series = state._series(symbol)
        arrays = [series._open, series._trades, *series._cols]
        total += sum(a.buffer_info()[1] * a.itemsize for a in arrays)
    return total


async def child(url: str, keep: bool) -> dict[str, float]:
    from aegis.binance import BinanceRest
    from aegis.clock import Clock
    from aegis.config import MarketSettings
    from aegis.market.feed import MarketFeed
    from aegis.sim.config import DEMO_API_KEY, DEMO_API_SECRET
    from bench.bench_warmup import symbols

    names = symbols(SYMBOLS)
    gc.collect()
    before = rss_bytes()
    state = StateStore(max_candles=HISTORY) if keep else DroppingStore(max_candles=HISTORY)
    clock = Clock()
    async with BinanceRest(url, DEMO_API_KEY, DEMO_API_SECRET, clock) as rest:
        config = MarketSettings(history_candles=HISTORY, max_candles=HISTORY)
        feed = MarketFeed(config, names, rest, url.replace("http", "ws", 1), state, clock)
        task = asyncio.create_task(feed.run())
        await feed.wait_ready()
        await feed.flush()
        held = sum(len(state._series(s)) for s in names) if keep else 0  # no Candle objects rebuilt
        columns = column_bytes(state, names) if keep else 0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    del feed, rest, task
    gc.collect()
    after = rss_bytes()
    # Second, direct figure: what the process gives back when the series are dropped.
    state._candles.clear()
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    released = after - rss_bytes()
    return {
        "before": before,
        "after": after,
        "released": released,
        "held": held,
        "columns": columns,
        "symbols": len(names),
    }


def run_child(url: str, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_footprint", "child", url, mode],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "child":
        logger.remove()
        logger.add(sys.stderr, level="WARNING")
        print(json.dumps(asyncio.run(child(sys.argv[2], sys.argv[3] == "held"))))
        return 0
    print(describe())
    with sim_process() as url:
        run_child(url, "none")  # fills the simulator's candle cache: later runs see the same latency
        runs = [(run_child(url, "none"), run_child(url, "held")) for _ in range(ROUNDS)]
    none = min((r[0] for r in runs), key=lambda r: r["after"])
    held = min((r[1] for r in runs), key=lambda r: r["after"])
    n = int(held["held"])
    delta = held["after"] - none["after"]
    mib = 1024 * 1024
    print(f"\n{int(held['symbols'])} symbols x {HISTORY} candles through the real feed path ({n} held)")
    print(f"  RSS holding none        {none['after'] / mib:8.1f} MiB  (start {none['before'] / mib:.1f} MiB)")
    print(f"  RSS holding all         {held['after'] / mib:8.1f} MiB  (start {held['before'] / mib:.1f} MiB)")
    per_candle = delta / n if n else float("nan")
    verdict = "met" if per_candle < TARGET_BYTES else "MISSED"
    print(
        f"  difference              {delta / mib:8.1f} MiB = {per_candle:.1f} bytes per candle (target < {TARGET_BYTES}: {verdict})"
    )
    print(
        f"  store's int64 columns   {held['columns'] / n:.1f} bytes per candle (their contents; capacity slack not counted)"
    )
    print(
        f"  released on dropping    {held['released'] / n:.1f} bytes per candle (the held process, its series"
        " cleared, GC and malloc_trim)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
