"""How many symbols one engine process carries at live rates: CPU, memory, event-loop lag, warm-up, health.

Run: ``.venv/bin/python -m bench.bench_scale`` (or ``make bench``); ``BENCH_SCALE_STEPS=50,100,200,all``,
``BENCH_SCALE_SPEED=10``, ``BENCH_SCALE_MINUTES=5`` (exchange minutes measured per step).

Two real processes per step, started the way an operator starts them: the simulator
(``bench/sim_process.py``) and ``aegis run --sim --sim-url`` (``bench/soak_procs.EngineProcess``)
with the example strategy trading, subscribed to the first N USDT perpetuals in TRADING status of
the exchangeInfo the simulator serves (the real one: all of them at the last step).

The rate. Binance pushes a ``kline_1m`` update every 250 ms per symbol and one closed candle per
minute. The simulator runs at ``SPEED`` times the wall with an update every ``250 * SPEED``
exchange ms, so every symbol streams Binance's 4 updates per wall second while candles close
``SPEED`` times as often as live (every close is a store append and a strategy evaluation, and all
N close in the same instant: the burst the loop must absorb). That is a conservative stand-in for
live rates that fits a step in seconds; the engine's timers (reconciles, keepalives) run ``SPEED``
times as often too. The frames the engine actually received are counted (its
``aegis_stream_frames_total``) and printed next to the target, so a simulator that falls behind on
this shared machine shows.

Measured per step over whole exchange minutes: engine CPU (``/proc/<pid>/stat``, % of one core,
the ceiling of a single-loop process), the simulator's CPU (the peer producing the frames, on the
same cores), RSS, event-loop lag (the engine's ``aegis_event_loop_lag_seconds`` histogram: mean
and worst against ``ops.max_loop_lag_s``), time to market warm-up (1000 candles per symbol) and to
trading ready, and ``/health`` sampled every few seconds.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.machine import describe
from bench.sim_process import sim_child
from bench.soak_procs import EngineProcess, get_json

BINANCE_UPDATE_MS = 250  # Binance's kline stream update speed
SPEED = float(os.environ.get("BENCH_SCALE_SPEED", "10"))
MINUTES = int(os.environ.get("BENCH_SCALE_MINUTES", "5"))
STEPS = os.environ.get("BENCH_SCALE_STEPS", "50,100,200,all")
SAMPLE_S = 5.0  # a scrape every 5 s: tighter than Prometheus' usual 15 s, loose enough not to load the loop
MAX_LOOP_LAG_S = 1.0  # ops.max_loop_lag_s, the /health bound
_WARMED = re.compile(r"market warm-up done: \d+ symbols in ([0-9.]+) s")


@dataclass
class Step:
    symbols: int
    ready_s: float
    warmup_s: float | None
    window_s: float
    cpu_pct: float
    sim_cpu_pct: float
    rss_mb: float
    lag_mean_ms: float
    lag_worst_ms: float
    frames_per_s: float
    closed_per_s: float
    evaluations: float
    burst_ms: float
    orders: float
    healthy: int
    samples: int
    last_problem: str
    exit_code: int


def usdt_perpetuals(sim_url: str) -> list[str]:
    """Every USDT-margined perpetual in TRADING status of the simulator's exchangeInfo, in its order."""
    info = get_json(f"{sim_url}/fapi/v1/exchangeInfo")
    return [
        s["symbol"]
        for s in info["symbols"]
        if s["status"] == "TRADING" and s["quoteAsset"] == "USDT" and s["contractType"] == "PERPETUAL"
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def scrape(ops_url: str) -> dict[str, float]:
    """GET /metrics, every sample summed over its labels (histogram buckets keyed by ``le``)."""
    with urllib.request.urlopen(f"{ops_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name + (f"|{sample.labels['le']}" if "le" in sample.labels else "")
            out[key] = out.get(key, 0.0) + sample.value
    return out


def health(ops_url: str) -> tuple[bool, str]:
    """(200?, the first reason /health gives otherwise)."""
    try:
        with urllib.request.urlopen(f"{ops_url}/health", timeout=10) as resp:
            return resp.status == 200, ""
    except urllib.error.HTTPError as exc:
        reasons = (get_json_body(exc) or {}).get("reasons") or ["?"]
        return False, str(reasons[0])
    except OSError as exc:
        return False, f"no answer: {exc}"


def get_json_body(exc: urllib.error.HTTPError) -> dict[str, list[str]] | None:
    try:
        body = json.loads(exc.read())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def warmup_seconds(log: Path) -> float | None:
    """What the engine logged for its market warm-up (1000 candles per symbol)."""
    found = _WARMED.search(log.read_text(errors="replace"))
    return float(found.group(1)) if found else None


def burst_ms(delta: Callable[[str], float], symbols: int) -> float:
    """Loop time the strategy takes when every symbol's candle closes at once (the minute burst):
    mean evaluation time x symbols. The lag probe samples once a second and sees this burst only
    when a probe falls due inside it, so this is the figure to hold against the lag bound."""
    count = delta("aegis_strategy_evaluation_seconds_count")
    return 1000 * delta("aegis_strategy_evaluation_seconds_sum") / count * symbols if count else 0.0


def measure(names: list[str]) -> Step:
    """One step: a fresh simulator and engine, ready, then one measurement window; both stopped."""
    with sim_child(speed=SPEED, kline_update_ms=int(BINANCE_UPDATE_MS * SPEED)) as sim, tempfile.TemporaryDirectory(
        prefix="aegis-scale-"
    ) as tmp:
        engine = EngineProcess(Path(tmp), sim.url, {"AEGIS_SYMBOLS": ",".join(names)})
        try:
            start = time.monotonic()
            engine.start()  # returns once /state says trading is ready
            step = observe(engine, sim.pid, len(names), time.monotonic() - start)
        finally:
            code = engine.terminate() if engine.child is not None else -1  # never leave an engine behind
        step.exit_code = code
        return step


def observe(engine: EngineProcess, sim_pid: int, symbols: int, ready_s: float) -> Step:
    """``MINUTES`` exchange minutes of the running engine: CPU, RSS, lag, frames, /health."""
    assert engine.child is not None
    pid = engine.child.pid
    window_s = MINUTES * 60 / SPEED
    before, cpu0, sim0, t0 = scrape(engine.ops_url), cpu_seconds(pid), cpu_seconds(sim_pid), time.monotonic()
    healthy, samples, problem, rss, gauge_max = 0, 0, "", 0.0, 0.0
    while (elapsed := time.monotonic() - t0) < window_s:
        time.sleep(min(SAMPLE_S, window_s - elapsed))
        ok, why = health(engine.ops_url)
        healthy, samples, problem = healthy + ok, samples + 1, why or problem
        rss = max(rss, rss_mb(pid))
        # the worst of the last 10 one-second samples: sampled every 5 s, it misses none
        gauge_max = max(gauge_max, scrape(engine.ops_url).get("aegis_event_loop_lag_max_seconds", 0.0))
    cpu1, sim1, t1, after = cpu_seconds(pid), cpu_seconds(sim_pid), time.monotonic(), scrape(engine.ops_url)
    wall = t1 - t0

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    lag_count = delta("aegis_event_loop_lag_seconds_count")
    return Step(
        symbols=symbols,
        ready_s=ready_s,
        warmup_s=warmup_seconds(engine.current.log_path),
        window_s=wall,
        cpu_pct=100 * (cpu1 - cpu0) / wall,
        sim_cpu_pct=100 * (sim1 - sim0) / wall,
        rss_mb=rss,
        lag_mean_ms=1000 * delta("aegis_event_loop_lag_seconds_sum") / lag_count if lag_count else 0.0,
        lag_worst_ms=1000 * gauge_max,
        frames_per_s=delta("aegis_stream_frames_total") / wall,
        closed_per_s=delta("aegis_market_candles_received_total") / wall,
        evaluations=delta("aegis_strategy_evaluations_total"),
        burst_ms=burst_ms(delta, symbols),
        orders=delta("aegis_orders_total"),
        healthy=healthy,
        samples=samples,
        last_problem=problem,
        exit_code=-1,  # set when the engine has stopped
    )


def steps(available: int) -> list[int]:
    """``BENCH_SCALE_STEPS`` as symbol counts, ``all`` = every USDT perpetual served."""
    counts = [available if s.strip() == "all" else min(int(s), available) for s in STEPS.split(",") if s.strip()]
    return sorted(set(counts))


def report(rows: list[Step]) -> None:
    per_symbol_target = 1000 / BINANCE_UPDATE_MS + SPEED / 60
    print(
        f"\nclock x{SPEED:g}: each symbol streams {1000 / BINANCE_UPDATE_MS:g} updates/s (Binance's 250 ms) and "
        f"{SPEED:g} closed candles/min ({SPEED:g}x live); {MINUTES} exchange minutes per step\n"
    )
    header = (
        f"{'symbols':>7} {'ready s':>8} {'warm-up s':>9} {'CPU %':>6} {'sim CPU %':>9} {'RSS MB':>7} "
        f"{'lag mean ms':>11} {'lag worst ms':>12} {'frames/s':>9} {'(target)':>9} {'closed/s':>8} "
        f"{'evals':>6} {'burst ms':>8} {'orders':>6} {'health':>7} {'exit':>4}"
    )
    print(header)
    for r in rows:
        warm = f"{r.warmup_s:.1f}" if r.warmup_s is not None else "?"
        print(
            f"{r.symbols:>7} {r.ready_s:>8.1f} {warm:>9} {r.cpu_pct:>6.1f} {r.sim_cpu_pct:>9.1f} {r.rss_mb:>7.0f} "
            f"{r.lag_mean_ms:>11.2f} {r.lag_worst_ms:>12.1f} {r.frames_per_s:>9.0f} "
            f"{r.symbols * per_symbol_target:>9.0f} {r.closed_per_s:>8.1f} {r.evaluations:>6.0f} {r.burst_ms:>8.1f} {r.orders:>6.0f} "
            f"{r.healthy:>3}/{r.samples:<3} {r.exit_code:>4}"
        )
    for r in rows:
        if r.last_problem:
            print(f"  {r.symbols} symbols, /health said: {r.last_problem}")
    last = rows[-1]
    share = last.cpu_pct / 100
    print(
        f"\n{last.symbols} symbols: {share:.0%} of one core (the ceiling of a one-loop process), "
        f"worst loop lag {last.lag_worst_ms:.0f} ms and a minute-close burst of {last.burst_ms:.0f} ms against the "
        f"{MAX_LOOP_LAG_S * 1000:.0f} ms /health bound, "
        f"frames received {last.frames_per_s / (last.symbols * per_symbol_target):.0%} of the target rate"
    )
    if len(rows) > 1 and last.cpu_pct > rows[0].cpu_pct:
        first = rows[0]
        marginal = (last.cpu_pct - first.cpu_pct) / (last.symbols - first.symbols)
        print(
            f"marginal cost {marginal:.3f} % of a core per symbol: one core would saturate near "
            f"{last.symbols + (100 - last.cpu_pct) / marginal:.0f} symbols at these rates (a linear extrapolation, "
            "not a measure: Binance lists no such number of USDT perpetuals)"
        )


def main() -> int:
    print(describe())
    with sim_child(speed=SPEED) as sim:
        names = usdt_perpetuals(sim.url)
    print(f"exchangeInfo served by the simulator: {len(names)} USDT perpetuals in TRADING status")
    rows: list[Step] = []
    for count in steps(len(names)):
        rows.append(measure(names[:count]))
        r = rows[-1]
        print(f"  {count} symbols: CPU {r.cpu_pct:.1f} %, RSS {r.rss_mb:.0f} MB, ready in {r.ready_s:.1f} s", flush=True)
    report(rows)
    print(describe())
    return 0 if all(r.exit_code == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
