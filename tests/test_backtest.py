"""``aegis backtest``'s guarantees, as a user would check them: the same inputs and seed give the same
files byte for byte (faults included, whatever the process's hash seed); a strategy cannot see or
trade on a candle before it closed; and the same strategy trades the same in ``aegis run --sim``.

Each run replays a few hours of the packaged real BTCUSDT candles (about 2 s of CPU each).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from aegis import virtualtime
from aegis.backtest.plan import BacktestPlan, parse_faults, parse_time
from aegis.backtest.runner import backtest_settings, run
from aegis.config import Settings
from aegis.domain import MINUTE_MS, Fill
from aegis.engine import Engine
from aegis.sim.candlefiles import data_files, load_rows
from aegis.sim.config import DATA_DIR
from aegis.strategy.api import Context, StrategyOutput
from aegis.strategy.examples.rsi_reversion import RsiReversion
from aegis.trading.clientid import client_id, is_ours

REPO = Path(__file__).resolve().parent.parent
SYMBOL = "BTCUSDT"
START = "2025-05-05T08:00"  # the demo's start: 1000 candles of warm-up before it in the packaged data
FILES = ("summary.json", "fills.csv", "trades.csv", "report.html")
EFFECT = re.compile(r"fault #\d+ \S+ took effect at \d+")
MS = parse_time("--from", START)


def _settings(journal: Path) -> Settings:
    return Settings(profile="sim", symbols=[SYMBOL], ops={"port": 0}, journal={"path": journal}, alerts={"urls": []})


def _backtest(tmp: Path, strategy: Any, hours: float, **plan_fields: Any) -> Path:
    """One in-process backtest from START; returns its report directory."""
    end = MS + int(hours * 60) * MINUTE_MS
    plan = BacktestPlan((SYMBOL,), MS, end, strategy.window, **plan_fields)
    out = tmp / "report"
    tmp.mkdir(parents=True, exist_ok=True)
    assert run(plan, backtest_settings(_settings(tmp / "base.sqlite"), plan, tmp / "journal.sqlite"), strategy, out) == 0
    return out


def _files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in FILES}


def _fills_csv(directory: Path) -> list[dict[str, str]]:
    lines = (directory / "fills.csv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]


# --- reproducible ----------------------------------------------------------------------------


def test_two_runs_in_one_process_write_byte_identical_files(tmp_path: Path) -> None:
    first = _files(_backtest(tmp_path / "a", RsiReversion(), 3))
    second = _files(_backtest(tmp_path / "b", RsiReversion(), 3))
    assert first == second
    assert first["trades.csv"].count(b"\n") > 2, "the stretch should hold a few round trips"


def _cli_backtest(out: Path, hash_seed: str) -> str:
    # This stretch and seed put an order's unknown outcome (a request held past its timeout) next
    # to a frozen user stream and delayed events: the protective orders' times then depended on
    # the phase of aiohttp's whole-second timeouts, i.e. on when the process started.
    out.mkdir(parents=True)
    argv = [sys.executable, "-m", "aegis", "backtest", "--symbols", SYMBOL, "--from", "2025-05-05T00:00",
            "--to", "2025-05-05T02:00", "--faults", "all@4", "--seed", "3", "--report-dir", str(out)]  # fmt: skip
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run(argv, cwd=out.parent, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def test_faults_from_the_seed_replay_exactly_in_separate_processes(tmp_path: Path) -> None:
    """Two processes with different hash seeds (set and dict orders differ), started at different
    moments: the same faults take effect at the same exchange times, and every file is
    byte-identical."""
    logs = [_cli_backtest(tmp_path / name, hash_seed) for name, hash_seed in (("a", "1"), ("b", "2"))]
    effects = [EFFECT.findall(log) for log in logs]
    assert len(effects[0]) >= 4, "the schedule should inject faults"
    assert "found after" in logs[0], "an order's outcome should have been unknown, then found"
    assert effects[0] == effects[1]
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


class _NoisyLoop(virtualtime.VirtualTimeLoop):
    """The virtual loop with what a loaded machine adds: timers armed and cancelled in between
    (aiohttp re-arms a read timeout per chunk the kernel delivers, and how the bytes are chunked
    varies with load). They reshape the timer heap; nothing of the run may depend on that."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._noise = random.Random(7)
        super().__init__(*args, **kwargs)

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> asyncio.TimerHandle:
        for _ in range(self._noise.randrange(3)):
            super().call_at(when + self._noise.choice((0.0, 1e-6, 1.0)), lambda: None).cancel()
        return super().call_at(when, callback, *args, context=context)


def test_faulted_backtest_does_not_depend_on_the_timer_heap_layout(tmp_path: Path, monkeypatch: Any) -> None:
    """The faults' reconnects backfill candles, and each asks for an equity sample at one instant:
    those (and every other same-instant timer) must run in the order they were scheduled."""
    faults = {"faults": parse_faults("all@4"), "seed": 3}
    quiet = _files(_backtest(tmp_path / "quiet", RsiReversion(), 2, **faults))
    monkeypatch.setattr(virtualtime, "VirtualTimeLoop", _NoisyLoop)
    assert _files(_backtest(tmp_path / "noisy", RsiReversion(), 2, **faults)) == quiet


class _SlowThreadsLoop(virtualtime.VirtualTimeLoop):
    """The virtual loop on a machine whose worker threads are slow: every executor job (the
    journal's reads, the candle files) first sleeps 0-30 ms of wall time, seeded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._noise = random.Random(11)
        super().__init__(*args, **kwargs)

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> asyncio.Future[Any]:
        pause = self._noise.choice((0.0, 0.0, 0.01, 0.03))

        def slow() -> Any:
            time.sleep(pause)
            return func(*args)

        return super().run_in_executor(executor, slow)


def test_faulted_backtest_does_not_depend_on_how_fast_worker_threads_are(tmp_path: Path, monkeypatch: Any) -> None:
    """The reconciler reads the journal on a worker thread while the instant's frames are being
    handled: its answer must land at the same point of the run however long the thread takes."""
    faults = {"faults": parse_faults("all@4"), "seed": 7}
    quiet = _files(_backtest(tmp_path / "quiet", RsiReversion(), 24, **faults))
    monkeypatch.setattr(virtualtime, "VirtualTimeLoop", _SlowThreadsLoop)
    assert _files(_backtest(tmp_path / "slow", RsiReversion(), 24, **faults)) == quiet


# --- no look-ahead ---------------------------------------------------------------------------


class Cheater:
    """Tries to trade on what it has just seen: when flat, a MARKET buy on candle N's close (hoping
    for N's close price) or, alternately, a LIMIT buy at N's close (a price N itself traded); when
    long, closes. Records what it was shown and when."""

    name = "cheater"
    window = 3

    def __init__(self) -> None:
        self.seen: list[tuple[Any, int, list[int]]] = []
        self.limits: dict[int, Decimal] = {}  # candle open ms -> limit price
        self.markets: set[int] = set()

    def on_candle(self, ctx: Context) -> StrategyOutput:
        self.seen.append((ctx.candle, ctx.now_ms, [c.open_time_ms for c in ctx.window]))
        if ctx.position > 0:
            return ctx.close()
        if ctx.position != 0 or ctx.open_orders:
            return None
        t = ctx.candle.open_time_ms
        if len(self.markets) <= len(self.limits):
            self.markets.add(t)
            return ctx.buy(notional=Decimal("200"))
        self.limits[t] = ctx.candle.close
        return ctx.buy(notional=Decimal("200"), price=ctx.candle.close)


def _file_candles() -> dict[int, tuple[Decimal, ...]]:
    rows = load_rows(data_files((DATA_DIR,))[SYMBOL])
    times = rows.open_times()
    assert times is not None
    lo, hi = MS - 10 * MINUTE_MS, MS + 5 * 60 * MINUTE_MS
    return {t: rows.row(i)[:4] for i, t in enumerate(times) if lo <= t < hi}


def test_a_strategy_sees_only_closed_candles_and_fills_no_earlier_than_the_next(tmp_path: Path) -> None:
    cheater = Cheater()
    out = _backtest(tmp_path, cheater, 3)
    candles = _file_candles()
    assert len(cheater.seen) >= 180
    for candle, now_ms, window in cheater.seen:
        # Shown after its close, whole (the file's final OHLC, not a forming snapshot), and last.
        assert now_ms >= candle.open_time_ms + MINUTE_MS, (candle.open_time_ms, now_ms)
        assert (candle.open, candle.high, candle.low, candle.close) == candles[candle.open_time_ms]
        assert window[-1] == candle.open_time_ms and all(t + MINUTE_MS <= now_ms for t in window)
    fills = [f for f in _fills_csv(out) if f["side"] == "BUY"]
    entries = cheater.markets | set(cheater.limits)
    decided = {client_id(Cheater.name, SYMBOL, f"{t}.1").rsplit(".", 1)[0]: t for t in entries}
    checked = {"market": 0, "limit": 0}
    for f in fills:
        n = decided[f["client_order_id"].rsplit(".", 1)[0]]
        at = int(f["time_ms"])
        price = Decimal(f["price"])
        assert at >= n + MINUTE_MS, f"order of candle {n} filled at {at}, before candle N+1 opened"
        # The candle whose path it filled on: the one open at ``at``, or (a fill stamped on a minute
        # boundary: the path walked to its close) the one that closed then, but never candle N.
        paths = [m for m in {at - at % MINUTE_MS, at - MINUTE_MS} if m == at - at % MINUTE_MS or at % MINUTE_MS == 0]
        paths = [m for m in paths if m > n]
        assert any(candles[m][2] <= price <= candles[m][1] for m in paths), f"fill at {price} off the path of {paths}"
        if n in cheater.limits:
            assert price <= cheater.limits[n]
            checked["limit"] += 1
        else:
            checked["market"] += 1
    assert checked["market"] >= 5 and checked["limit"] >= 5, checked
    # A limit that N+1's path never reached (N+1 traded only above N's close) fills later, if ever.
    never_at_next = [n for n, p in cheater.limits.items() if candles[n + MINUTE_MS][2] > p]
    assert all(
        int(f["time_ms"]) > n + 2 * MINUTE_MS
        for f in fills
        for n in never_at_next
        if decided.get(f["client_order_id"].rsplit(".", 1)[0]) == n
    )


# --- parity with `aegis run --sim` ------------------------------------------------------------

PARITY_HOURS = 3
PARITY_SPEED = 1200.0  # `make run`'s speed: 3 exchange hours in 9 wall seconds


class _RunSim(Engine):
    """``aegis run --sim``'s engine, keeping its fills (the demo's journal is a fresh temporary file)."""

    fills: list[Fill]

    async def _report(self, left_s: float) -> None:
        await super()._report(left_s)
        assert self.journal is not None
        self.fills = await self.journal.fills()


async def _run_sim(settings: Settings, seconds: float) -> list[Fill]:
    engine = _RunSim(settings, strategy=RsiReversion())
    assert await engine.run(run_for_s=seconds) == 0
    return engine.fills


def _trade(f: Fill | dict[str, str]) -> tuple[int, tuple[str, ...]]:
    """(exchange ms, what was traded: side, quantity, price, client order id)."""
    if isinstance(f, dict):
        return int(f["time_ms"]), (f["side"], f["quantity"], f["price"], f["client_order_id"])
    return f.time_ms, (f.side.value, f"{f.quantity:f}", f"{f.price:f}", f.client_order_id)


def _close_of_candle_at(ms: int) -> int:
    return -(-ms // MINUTE_MS) * MINUTE_MS


def test_backtest_and_run_sim_make_the_same_trades(tmp_path: Path) -> None:
    """``aegis run --sim`` (embedded simulator, a clock paced at 1200x, the live cadences, partial
    klines) over the same candles: the same fills, in the same order, at the same prices.

    Both modes share one virtual clock between engine and exchange and work takes no exchange
    time in either, so every request, candle and decision happens at the same exchange ms. The one
    difference is where the exchange stands inside a minute: ``run --sim`` walks each candle's
    path in small steps, the backtest (closed klines only, no timer inside the minute) walks it
    when the candle closes. So a fill on the path (a resting limit, a triggered stop or
    take-profit) carries, in the backtest, the close of the candle it happened in: at most 60 s
    later, same price, and before the strategy sees that candle in both."""
    out = _backtest(tmp_path / "bt", RsiReversion(), PARITY_HOURS)
    end_ms = MS + PARITY_HOURS * 3600_000
    settings = _settings(tmp_path / "unused.sqlite")
    sim = settings.sim.model_copy(update={"start_ms": MS, "replay_aligned": True, "speed": PARITY_SPEED})
    run_sim = _run_sim(settings.model_copy(update={"sim": sim}), PARITY_HOURS * 3600 + 30)
    fills = virtualtime.run(run_sim, pace=PARITY_SPEED)
    live = [_trade(f) for f in fills if f.time_ms < end_ms and is_ours(f.client_order_id)]
    backtest = [_trade(f) for f in _fills_csv(out) if int(f["time_ms"]) < end_ms]
    assert len(backtest) >= 6
    assert [what for _, what in live] == [what for _, what in backtest]
    assert [_close_of_candle_at(at) for at, _ in live] == [at for at, _ in backtest]
    assert any(at % MINUTE_MS for at, _ in live), "the stretch should hold a fill inside a minute"
