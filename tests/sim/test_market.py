"""Market data: deterministic candles for any symbol, Binance klines semantics, kline events."""

from __future__ import annotations

import asyncio
import csv
import gzip
import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from aegis.sim.candles import MINUTE_MS
from aegis.sim.config import DATA_DIR, SimConfig
from aegis.sim.server import SimServer
from aegis.sim.simulator import Simulator
from tests.sim.rest_helpers import Raw

START = 1_795_000_030_000  # mid-bar: the forming bar is 30 s old


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(start_ms=START)) as s:
        yield s


async def klines(raw: Raw, **params: Any) -> list[list[Any]]:
    status, rows, _ = await raw.public(
        "/fapi/v1/klines", symbol=params.pop("symbol", "BTCUSDT"), interval="1m", **params
    )
    assert status == 200, rows
    return rows


async def test_klines_window_semantics(server: SimServer, raw: Raw) -> None:
    now = server.sim.clock.now_ms()
    current = now - now % MINUTE_MS
    latest = await klines(raw, limit=1500)
    assert len(latest) == 1500 and latest[-1][0] == current and latest[0][0] == current - 1499 * MINUTE_MS
    assert latest[-1][6] == current + MINUTE_MS - 1 > now  # still forming
    start = current - 100 * MINUTE_MS
    assert [r[0] for r in await klines(raw, startTime=start, limit=3)] == [
        start + i * MINUTE_MS for i in range(3)
    ]
    assert (await klines(raw, startTime=start + 1, limit=1))[0][
        0
    ] == start + MINUTE_MS  # opens at/after startTime
    assert [r[0] for r in await klines(raw, endTime=start + 5, limit=2)] == [start - MINUTE_MS, start]
    both = await klines(raw, startTime=start, endTime=start + 9 * MINUTE_MS, limit=1000)
    assert len(both) == 10
    assert (await klines(raw, startTime=current + 10 * MINUTE_MS)) == []  # nothing from the future
    assert len(await klines(raw, limit=5000)) == 1500  # capped at Binance's maximum
    first = await klines(raw, startTime=0, limit=1)  # python-binance's earliest-candle probe
    assert first[0][0] == 1569398400000  # BTCUSDT onboardDate in the real exchangeInfo
    assert len(await klines(raw)) == 500  # default limit
    hourly = (await raw.public("/fapi/v1/klines", symbol="BTCUSDT", interval="1h", limit=2))[1]
    assert hourly[-1][0] % 3_600_000 == 0 and hourly[-1][6] - hourly[-1][0] == 3_600_000 - 1
    assert (await raw.public("/fapi/v1/klines", symbol="BTCUSDT", interval="7m"))[1]["code"] == -1120


async def test_klines_weight_by_limit(raw: Raw) -> None:
    used = []
    for limit in (99, 100, 499, 500, 1000, 1001):
        _, _, headers = await raw.public("/fapi/v1/klines", symbol="ETHUSDT", interval="1m", limit=limit)
        used.append(int(headers["X-MBX-USED-WEIGHT-1M"]))
    assert [b - a for a, b in zip([0, *used], used, strict=False)] == [1, 2, 2, 5, 5, 10]


async def test_history_is_consistent_across_a_clock_jump(server: SimServer, raw: Raw) -> None:
    before = await klines(raw, limit=120)
    published: list[dict[str, Any]] = []
    server.sim.bus.on_kline(lambda sym, e: published.append(e))
    server.sim.market.watch("BTCUSDT")
    await server.set_clock(jump_ms=3 * 3600_000)
    after = await klines(raw, startTime=before[0][0], limit=180)
    assert after[:119] == before[:119]  # every closed bar unchanged
    assert (
        after[119][0] == before[119][0] and after[119][6] == before[119][6]
    )  # the then-forming bar, now closed
    closes = [e["k"] for e in published if e["k"]["x"]]
    assert len(closes) == 180  # every candle in between closed, in order, once
    assert [k["t"] for k in closes] == [before[-1][0] + i * MINUTE_MS for i in range(180)]
    rest = {r[0]: r for r in await klines(raw, startTime=closes[0]["t"], limit=180)}
    for k in closes:
        row = rest[k["t"]]
        assert [k["o"], k["h"], k["l"], k["c"], k["v"], k["n"], k["q"]] == [
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[8],
            row[7],
        ]


async def test_kline_events_only_for_watched_symbols(server: SimServer) -> None:
    seen: dict[str, list[dict[str, Any]]] = {}
    server.sim.bus.on_kline(lambda sym, e: seen.setdefault(sym, []).append(e))
    server.sim.market.watch("ethusdt")
    await server.set_clock(jump_ms=5 * MINUTE_MS)
    assert set(seen) == {"ETHUSDT"}
    events = seen["ETHUSDT"]
    assert [e["k"]["x"] for e in events] == [True] * 5 + [False]
    last = events[-1]
    assert set(last) == {"e", "E", "s", "k"} and last["e"] == "kline" and last["k"]["i"] == "1m"
    assert set(last["k"]) == set("t T s i f L o c h l v n x q V Q B".split())
    server.sim.market.unwatch("ETHUSDT")
    seen.clear()
    await server.set_clock(jump_ms=2 * MINUTE_MS)
    assert seen == {}


async def test_accelerated_clock_streams_hours_in_seconds() -> None:
    config = SimConfig(start_ms=START, speed=3600)  # one exchange hour per wall second
    async with SimServer(config) as server:
        events: list[dict[str, Any]] = []
        server.sim.bus.on_kline(lambda sym, e: events.append(e["k"]))
        server.sim.market.watch("BTCUSDT")
        await asyncio.sleep(0.6)
        closes = [k["t"] for k in events if k["x"]]
    assert len(closes) >= 25  # ~36 exchange minutes
    assert closes == sorted(set(closes)) and all(b - a == MINUTE_MS for a, b in itertools.pairwise(closes))
    updates = [k for k in events if not k["x"]]
    assert updates and all(k["t"] in closes or k["t"] == closes[-1] + MINUTE_MS for k in updates)


async def test_intermediate_updates_at_the_configured_cadence() -> None:
    config = SimConfig(start_ms=START, speed=60, kline_update_ms=3000)
    async with SimServer(config) as server:
        events: list[dict[str, Any]] = []
        server.sim.bus.on_kline(lambda sym, e: events.append(e))
        server.sim.market.watch("BTCUSDT")
        await asyncio.sleep(0.6)  # 36 exchange seconds
    updates = [e for e in events if not e["k"]["x"]]
    same_bar = [b["E"] - a["E"] for a, b in itertools.pairwise(updates) if a["k"]["t"] == b["k"]["t"]]
    assert len(updates) >= 6 and min(same_bar) >= 2900  # never more often than asked
    assert sorted(same_bar)[len(same_bar) // 2] <= 4500  # and about as often (a loaded CI box lags)


def test_candles_are_a_pure_function_of_symbol_and_time() -> None:
    a, b = Simulator(SimConfig(start_ms=START)), Simulator(SimConfig(start_ms=START + 10**9))
    other_seed = Simulator(SimConfig(start_ms=START, seed=2))
    t = START - START % MINUTE_MS - 500 * MINUTE_MS
    for sym in ("BTCUSDT", "DOGEUSDT", "1000PEPEUSDT"):
        assert [a.market.candle(sym, t + i * MINUTE_MS) for i in range(50)] == [
            b.market.candle(sym, t + i * MINUTE_MS) for i in range(50)
        ]
    assert a.market.candle("DOGEUSDT", t) != other_seed.market.candle("DOGEUSDT", t)
    assert a.market.candle("BTCUSDT", t) == other_seed.market.candle(
        "BTCUSDT", t
    )  # real data ignores the seed


@pytest.mark.parametrize("symbol", ["DOGEUSDT", "XRPUSDT", "1000PEPEUSDT", "BTCDOMUSDT", "ETHBTC"])
def test_synthetic_candles_respect_the_instrument(symbol: str) -> None:
    sim = Simulator(SimConfig(start_ms=START))
    spec = sim.info.symbols[symbol]
    t0 = START - START % MINUTE_MS - 3000 * MINUTE_MS
    bars = [sim.market.candle(symbol, t0 + i * MINUTE_MS) for i in range(3000)]
    for prev, c in itertools.pairwise(bars):
        assert c.open == prev.close
    for c in bars:
        assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
        assert c.low >= spec.min_price and c.high <= spec.max_price
        for p in (c.open, c.high, c.low, c.close):
            assert (p - spec.min_price) % spec.tick == 0
        assert c.volume > 0 and (c.volume % spec.step) == 0
    closes = [c.close for c in bars]
    assert len(set(closes)) > 100  # it moves
    assert max(closes) / min(closes) < 2  # but like a market, not a random number generator


def test_real_candles_are_replayed_verbatim() -> None:
    with gzip.open(DATA_DIR / "binance_usdm_ETHUSDT_1m.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    n = len(rows)
    sim = Simulator(SimConfig(start_ms=START))
    k0 = (START // MINUTE_MS) // (2 * n) * (2 * n)  # a replay cycle starts here with the file's first row
    for i in (0, 1, 2, n - 1):
        c = sim.market.candle("ETHUSDT", (k0 + i) * MINUTE_MS)
        r = rows[i]
        assert (c.open, c.high, c.low, c.close, c.volume) == tuple(
            Decimal(r[x]) for x in ("open", "high", "low", "close", "volume")
        )
    turn = sim.market.candle("ETHUSDT", (k0 + n) * MINUTE_MS)  # played backwards from here: no price jump
    assert turn.open == Decimal(rows[n - 1]["close"])


def test_packaged_sample_is_small() -> None:
    assert sum(p.stat().st_size for p in DATA_DIR.iterdir()) < 4 * 1024 * 1024


async def test_admin_state_and_clock(server: SimServer, raw: Raw) -> None:
    await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
    state = await server.state()
    assert set(state) == {"clock_ms", "speed", "fill_model", "accounts", "symbols"}
    acct = state["accounts"]["aegis-demo-key"]
    assert set(acct) == {"positions", "open_orders", "open_algo_orders", "balances"}
    assert acct["positions"][0]["positionAmt"] == "0.010"
    assert set(state["symbols"]["BTCUSDT"]) == {"last_closed_open_ms", "price"}
    reply = await server.set_clock(speed=60, jump_ms=3600_000)
    assert reply["speed"] == 60 and reply["clock_ms"] >= state["clock_ms"] + 3600_000
    state = await server.state()
    assert state["speed"] == 60
    assert state["symbols"]["BTCUSDT"]["last_closed_open_ms"] >= reply["clock_ms"] - 2 * MINUTE_MS


def test_extra_candle_files_override_by_symbol(tmp_path: Any) -> None:
    rows = [
        "open_time_ms,open,high,low,close,volume,close_time_ms,quote_volume,trades",
        "1662336000000,0.5000,0.5100,0.4900,0.5050,1000.0,1662336059999,505.00000,12",
        "1662336060000,0.5050,0.5060,0.5000,0.5010,800.0,1662336119999,402.00000,9",
    ]
    path = tmp_path / "binance_usdm_XRPUSDT_1m.csv.gz"
    path.write_bytes(gzip.compress("\n".join(rows).encode()))
    sim = Simulator(SimConfig(start_ms=START, data_paths=(tmp_path,)))
    k0 = (START // MINUTE_MS) // 4 * 4  # two rows: the ping-pong cycle is four minutes
    first, second, back = (sim.market.candle("XRPUSDT", (k0 + i) * MINUTE_MS) for i in range(3))
    assert (first.open, first.high, first.low, first.close, first.trades) == (
        Decimal("0.5000"),
        Decimal("0.5100"),
        Decimal("0.4900"),
        Decimal("0.5050"),
        12,
    )
    assert first.quote_volume == Decimal("505.00000") and second.close == Decimal("0.5010")
    assert (back.open, back.close) == (second.close, second.open)  # replayed backwards after the end
