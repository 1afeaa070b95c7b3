"""Warm-up of 300 symbols x 1000 candles against the simulator's rate limits.

Run: ``.venv/bin/python -m bench.bench_warmup`` (or ``make bench``).

The real path: MarketFeed.run() -> Backfiller -> BinanceRest (ccxt transport, RateGovernor at
backfill priority) -> the simulator in its own process over loopback HTTP, and the kline
streams over loopback WebSocket. Reported: request weight used against the minimum Binance's
weight table allows (and what common request shapes would cost), wall time against the
weight-bound minimum, and 429s.

Two runs: Binance's mainnet limit (2400/min, real time: the whole warm-up fits in one window,
so the floor is latency), and a limit of 600/min on a 60x clock, where the weight budget is
what bounds the time and the governor has to pace the requests.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from dataclasses import dataclass

from loguru import logger

from aegis.binance import BinanceRest
from aegis.binance.constants import klines_weight
from aegis.binance.ratelimit import DEFAULT_HEADROOM, Priority
from aegis.clock import Clock
from aegis.config import MarketSettings
from aegis.market.backfill import plan_weight
from aegis.market.feed import MarketFeed
from aegis.sim.config import DEMO_API_KEY, DEMO_API_SECRET, SimConfig
from aegis.sim.symbols import ExchangeInfo
from aegis.state.store import StateStore
from bench.machine import describe
from bench.sim_process import sim_process

SYMBOLS = int(os.environ.get("BENCH_WARMUP_SYMBOLS", "300"))
HISTORY = 1000


@dataclass
class Outcome:
    service_s: float
    wall_s: float
    requests: int
    weight: int
    warmup_weight: int
    rate_limited: int
    stored: int
    limit: int
    share: float


def symbols(n: int) -> tuple[str, ...]:
    """The first ``n`` trading symbols, USDT-margined first (301 of them), then the rest."""
    info = ExchangeInfo.load(SimConfig())
    trading = [s for s, v in info.symbols.items() if v.status == "TRADING" and s.isalnum()]
    return tuple(sorted(trading, key=lambda s: (info.symbols[s].quote_asset != "USDT", s)))[:n]


async def service_time(url: str, symbol: str) -> float:
    """Wall seconds the simulator needs for one limit-1000 klines request it has not seen yet."""
    async with BinanceRest(url, DEMO_API_KEY, DEMO_API_SECRET, Clock()) as rest:
        start = time.perf_counter()
        await rest.klines(symbol, limit=HISTORY)
        return time.perf_counter() - start


async def warm(url: str, names: tuple[str, ...], speed: float, spare: str) -> Outcome:
    service = await service_time(url, spare)
    clock = Clock(speed=speed)
    state = StateStore(max_candles=HISTORY)
    async with BinanceRest(url, DEMO_API_KEY, DEMO_API_SECRET, clock) as rest:
        await rest.exchange_info()  # the governor adopts the exchange's published limits
        # The simulator process is busy building candles; its streams may go quiet for a while.
        config = MarketSettings(history_candles=HISTORY, max_candles=HISTORY, max_in_flight=8, stale_after_s=120.0)
        feed = MarketFeed(config, names, rest, url.replace("http", "ws", 1), state, clock)
        start = time.perf_counter()
        task = asyncio.create_task(feed.run())
        await feed.wait_ready()
        wall = time.perf_counter() - start
        stats = feed.backfill.stats
        stored = sum(len(state.candles(s)) for s in names)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return Outcome(
            service,
            wall,
            stats.requests,
            stats.weight,
            stats.weight_by_purpose.get("warmup", 0),
            stats.rate_limited,
            stored,
            rest.governor.limits.weight_per_minute,
            rest.governor.share * DEFAULT_HEADROOM[Priority.BACKFILL],
        )


def report(title: str, o: Outcome, n: int, speed: float) -> None:
    minimum = n * plan_weight(HISTORY)
    budget = o.limit  # what Binance allows per minute, all of it
    windows = max(0, math.ceil(minimum / budget) - 1)  # window rollovers the weight alone forces
    floor_s = windows * 60 / speed
    print(f"\n{title}: {n} symbols x {HISTORY} candles, limit {o.limit}/min, clock x{speed:g}")
    print(f"  candles stored          {o.stored} (expected {n * HISTORY})")
    print(f"  requests                {o.requests}")
    print(f"  warm-up request weight  {o.warmup_weight}  (minimum under Binance's table: {minimum})")
    print(
        f"  all request weight      {o.weight}  (+ candles that closed during the warm-up, fetched after"
        " stream reconnects)"
    )
    print(
        f"  common shapes           limit=1500 latest: {n * klines_weight(1500)} "
        f"(1499 closed); 2 x limit 500: {n * 2 * klines_weight(500)}; ccxt (1000/request): {n * klines_weight(1000)}"
    )
    print(f"  429 responses           {o.rate_limited}  (target 0)")
    print(
        f"  wall time               {o.wall_s:.2f} s  (weight-bound minimum {floor_s:.2f} s = {windows} window"
        f" rollover(s) at the full limit; the governor lets backfill use {o.share:.0%} of it)"
    )
    print(
        f"  simulator-bound floor   {o.service_s * n:.2f} s  ({o.service_s * 1000:.0f} ms per limit-1000 request,"
        " one request at a time in its process)"
    )


async def main_async() -> None:
    *names_list, spare = symbols(SYMBOLS + 1)
    names = tuple(names_list)
    with sim_process(speed=1.0) as url:
        report("mainnet limits", await warm(url, names, 1.0, spare), len(names), 1.0)
    with sim_process(speed=60.0, weight_limit_1m=600) as url:
        report("tight limit", await warm(url, names, 60.0, spare), len(names), 60.0)


def main() -> int:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    print(describe())
    asyncio.run(main_async())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
