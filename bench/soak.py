"""The chaos soak (issue 17): the engine against a faulty exchange for a simulated day, then a ledger.

    python -m bench.soak                  # 24 simulated hours at 300x (make soak)
    python -m bench.soak --short          # 4 simulated hours, fixed seed (tests/test_soak.py)
    python -m bench.soak --seed 7 --hours 48 --workdir /tmp/soak

A real ``aegis run --sim --sim-url`` process (journal on disk, the example RSI strategy tuned to
trade often, five symbols) runs against a ``python -m aegis.sim`` process whose clock is pinned
and accelerated. From a seed, the soak schedules on the simulator (``aegis.sim.chaos`` through
``SimAdmin.apply_schedule``) dropped and frozen market and user sockets, paused market streams,
listenKey expiries, keepalive failures, REST 5xx, 429 storms and 418 bans, orders accepted but
answered as unknown and invisible for a while, orders answered as unknown and not executed,
out-of-band trades and clock jumps; it adds a 24-hour jump (every socket meets Binance's 24-hour
cut and the listenKey expires) and SIGKILLs the engine at seeded times, restarting it on the same
journal as supervisord would. A monitor samples both sides all along (how long any divergence
stands) and plays the operator (a halt by the reconciler is logged and cleared). At the end the
faults are cleared, the engine is asked for a reconcile pass, the account is compared at a
quiesced moment, the engine is stopped, and ``soak_ledger`` checks everything against the
exchange's own records. Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import ROUND_UP, Decimal
from pathlib import Path
from typing import Any

from aegis.sim import chaos
from aegis.sim.admin import SimAdmin
from aegis.sim.config import DEMO_API_KEY
from bench import soak_ledger as checks
from bench.machine import describe
from bench.soak_exchange import Exchange, account_view, differences, engine_view
from bench.soak_monitor import Monitor
from bench.soak_procs import EngineProcess, SimProcess, get_json, send

HOUR_MS = 3_600_000
DAY_CUT_MS = 24 * HOUR_MS + 60_000  # past every socket's 24 hours and the listenKey's 60 minutes
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT")
# The example strategy, tuned to trade often: entries, protective stops and take-profits all day.
STRATEGY = '{"rsi_period": 6, "oversold": 38, "overbought": 62, "notional": "300"}'


@dataclass(frozen=True)
class Plan:
    seed: int = 17
    hours: float = 24.0
    speed: float = 300.0
    start_ms: int = 1_746_432_000_000  # 2025-05-05 08:00 UTC: the packaged real candles, in order
    rate: float = 2.0  # chaos events per exchange hour
    kills: int = 2
    day_cut: bool = True
    symbols: tuple[str, ...] = SYMBOLS
    workdir: Path | None = None
    rss_bound_mb: float = 64.0


SHORT = Plan(seed=1717, hours=4.0, rate=4.0, kills=1)


@dataclass
class Run:
    plan: Plan
    workdir: Path
    sim: SimProcess
    ex: Exchange
    engine: EngineProcess
    t0_ms: int = 0
    schedule: list[dict[str, Any]] = field(default_factory=list)
    jumps: list[tuple[int, int]] = field(default_factory=list)  # (at exchange ms, jumped ms)
    kill_at: list[int] = field(default_factory=list)
    end_ms: int = 0
    wall_start: float = field(default_factory=time.monotonic)


def engine_env(run_dir: Path, symbols: tuple[str, ...]) -> dict[str, str]:
    return {
        "AEGIS_JOURNAL__PATH": str(run_dir / "journal.sqlite"),
        "AEGIS_SYMBOLS": ",".join(symbols),
        "AEGIS_STRATEGY__PARAMS": STRATEGY,
        "AEGIS_REST__RECV_WINDOW_MS": "60000",  # 200 ms of wall time at 300x
        "AEGIS_ENGINE__REPORT_DIR": str(run_dir / "reports"),
        "AEGIS_LOGGING__LEVEL": "INFO",
    }


# --- the schedule --------------------------------------------------------------------------------
def trade_quantities(ex: Exchange) -> dict[str, str]:
    """An out-of-band trade per symbol worth about twice its minimum notional, on its step grid."""
    prices = {r["symbol"]: Decimal(r["price"]) for r in get_json(f"{ex.url}/fapi/v1/ticker/price")}
    out = {}
    for symbol, (step, min_notional) in ex.filters().items():
        qty = (2 * min_notional / prices[symbol] / step).to_integral_value(ROUND_UP) * step
        out[symbol] = format(qty, "f")
    return out


def build_schedule(run: Run) -> None:
    plan, t0 = run.plan, run.t0_ms
    span_end = t0 + int(plan.hours * HOUR_MS) - 30 * 60_000  # the last half hour settles
    entries = chaos.schedule(plan.seed, t0 + 60_000, span_end, rate=plan.rate, api_key=DEMO_API_KEY, symbols=plan.symbols)
    entries += every_kind_once(plan, t0 + 60_000, span_end)
    rng = random.Random(plan.seed * 7919)
    quantities = trade_quantities(run.ex)
    for entry in entries:
        if "trade" in entry:
            symbol = entry["trade"]["symbol"]
            entry["trade"]["quantity"] = quantities[symbol]
    kills = sorted(rng.randint(t0 + 20 * 60_000, span_end) for _ in range(plan.kills))
    if plan.day_cut:
        # Drawn in lived time; everything after it moves a day later, so the chaos goes on after it.
        cut = rng.randint(t0 + HOUR_MS // 2, max(t0 + HOUR_MS, span_end - HOUR_MS))
        for entry in entries:
            entry["at_ms"] += DAY_CUT_MS if entry["at_ms"] > cut else 0
        kills = [at + (DAY_CUT_MS if at > cut else 0) for at in kills]
        entries.append({"kind": "clock_jump", "ms": DAY_CUT_MS, "at_ms": cut})
    run.schedule = sorted(entries, key=lambda e: e["at_ms"])
    run.jumps = [(e["at_ms"], e["ms"]) for e in run.schedule if e.get("kind") == "clock_jump"]
    run.kill_at = kills


def every_kind_once(plan: Plan, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    """One event of each chaos kind at a seeded time, so a short run covers them all too: the first
    event of a one-kind schedule (its entries share one at_ms)."""
    out: list[dict[str, Any]] = []
    for i, kind in enumerate(chaos.CHAOS_KINDS):
        drawn = chaos.schedule(plan.seed + 1 + i, start_ms, end_ms, kinds=(kind,), rate=24.0,
                               api_key=DEMO_API_KEY, symbols=plan.symbols)  # fmt: skip
        at = random.Random(plan.seed + 1 + i).randint(start_ms, end_ms)
        out += [{**e, "at_ms": at} for e in drawn if e["at_ms"] == drawn[0]["at_ms"]]
    return out


def live_ms(run: Run, now_ms: int) -> int:
    """Exchange time since the start that the engine lived through (clock jumps excluded)."""
    return now_ms - run.t0_ms - sum(ms for at, ms in run.jumps if at <= now_ms)


# --- the run -------------------------------------------------------------------------------------
def start(plan: Plan) -> Run:
    workdir = plan.workdir or Path(tempfile.mkdtemp(prefix="aegis-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sim = SimProcess(workdir, plan.speed, plan.start_ms)
    sim.start()
    ex = Exchange(sim.url, plan.symbols)
    engine = EngineProcess(workdir, sim.url, engine_env(workdir, plan.symbols))
    run = Run(plan, workdir, sim, ex, engine)
    engine.start()
    run.t0_ms = ex.now_ms()
    build_schedule(run)
    asyncio.run(_apply(sim.url, run.schedule))
    return run


async def _apply(url: str, entries: list[dict[str, Any]]) -> None:
    async with SimAdmin(url) as admin:
        await admin.apply_schedule(entries)


def soak(run: Run, monitor: Monitor) -> None:
    """Until the planned hours have passed: sample, play the operator, SIGKILL and restart."""
    end_live = int(run.plan.hours * HOUR_MS)
    kills = list(run.kill_at)
    last_rss = 0.0
    while True:
        now = monitor.sample()
        if time.monotonic() - last_rss >= 0.5:
            run.engine.sample_rss()
            last_rss = time.monotonic()
        if now is not None and live_ms(run, now) >= end_live:
            run.end_ms = now
            return
        code = run.engine.exited()
        if code is not None:
            monitor.unplanned_exits.append(f"life {run.engine.current.number} exited with {code} at {now}")
            restart(run, monitor)
        elif kills and now is not None and now >= kills[0]:
            kills.pop(0)
            run.engine.kill9()
            monitor.kills.append(now)
            restart(run, monitor)
        time.sleep(0.1)


def restart(run: Run, monitor: Monitor) -> None:
    monitor.engine_down()
    run.engine.start()
    monitor.engine_up(run.ex.now_ms())


def quiesce(run: Run, ledger: checks.Ledger) -> dict[str, Any]:
    """End every lasting fault, let the engine settle, ask it for a pass; returns that report."""
    for fault in run.ex.faults():
        if fault["status"] in ("active", "scheduled"):
            run.ex.clear_fault(int(fault["id"]))
    jumped = bool(run.jumps)
    healthy = _wait_healthy(run.engine.ops_url, hang_guard_s=120.0, offset_explained=jumped)
    detail = list(healthy or [])
    if jumped:
        detail.append("expected: a clock offset as large as the exchange clock's jump (it never jumps back)")
    ledger.check("engine healthy once the faults are over", "yes" if healthy is None else "no", healthy is None, detail)
    report: dict[str, Any] = send("POST", f"{run.engine.ops_url}/reconcile", timeout_s=120.0)
    return report


def _wait_healthy(ops_url: str, hang_guard_s: float, offset_explained: bool) -> list[str] | None:
    """None once /health says ok or names only what the run explains: the simulator's clock jumps
    forward and stays there, so the engine rightly reports its offset from this host's clock."""
    deadline = time.monotonic() + hang_guard_s
    reasons: list[str] = ["no answer"]
    while time.monotonic() < deadline:
        body = health(ops_url)
        reasons = ["no answer"] if body is None else list(body.get("reasons", []))
        if offset_explained:
            reasons = [r for r in reasons if not r.startswith("clock offset")]
        if body is not None and (body.get("status") == "ok" or not reasons):
            return None
        time.sleep(0.2)
    return reasons


def health(ops_url: str) -> dict[str, Any] | None:
    """/health's body, a 503's too (its reasons are the point); None if the engine does not answer."""
    try:
        with urllib.request.urlopen(f"{ops_url}/health", timeout=10.0) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        try:
            body = json.loads(err.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def settled_differences(run: Run, tries: int = 80) -> tuple[dict[str, str], int]:
    """Compare at a quiesced moment: only an observation during which the exchange's account did not
    change counts (two reads around the engine's). Returns the differences that persisted and how
    many valid observations were made."""
    last: dict[str, str] = {}
    valid = 0
    for _ in range(tries):
        before = account_view(run.ex.state(), run.plan.symbols)
        ours = engine_view(get_json(f"{run.engine.ops_url}/state"), run.plan.symbols)
        after = account_view(run.ex.state(), run.plan.symbols)
        if before == after:
            valid += 1
            last = differences(ours, before)
            if not last:
                return {}, valid
        time.sleep(0.1)
    return last, valid


def final_checks(run: Run, monitor: Monitor, ledger: checks.Ledger) -> int:
    """The checks made on the running engine, then its stop; returns the exchange time of its last
    pass (the fills check covers trades up to it: later ones the next start catches up)."""
    report = quiesce(run, ledger)
    findings = [f"{f['kind']} {f['key']}: engine {f['engine']}, exchange {f['exchange']}" for f in report.get("findings", [])]
    ledger.check("POST /reconcile at the end is clean", "clean" if report.get("clean") else "not clean",
                 bool(report.get("clean")), findings + ([report["error"]] if report.get("error") else []))  # fmt: skip
    diffs, valid = settled_differences(run)
    now = run.ex.now_ms()
    checks.check_orphans(ledger, run.ex, run.ex.state()["accounts"][DEMO_API_KEY], now, grace_ms=10 * 60_000)
    ledger.check("positions, open orders, balance = exchange's", f"{len(diffs)} differences ({valid} quiet reads)",
                 not diffs and valid > 0, [f"{k}: {v}" for k, v in diffs.items()])  # fmt: skip
    newest_closed = (run.ex.now_ms() // 60_000 - 1) * 60_000
    stored = {s: get_json(f"{run.engine.ops_url}/state/candles/{s}", 60.0) or [] for s in run.plan.symbols}
    summary = (get_json(f"{run.engine.ops_url}/state") or {}).get("candles", {})
    holes = {s: len(summary.get(s, {}).get("holes", [])) for s in run.plan.symbols}
    checks.check_candles(ledger, run.ex, stored, holes, newest_closed - 10 * 60_000)
    code = run.engine.terminate()
    ledger.check("engine stops cleanly (SIGTERM -> exit 0)", code, code == 0)
    tail = run.engine.current.log_path.read_text(encoding="utf-8", errors="replace")
    ledger.check("engine's own final check at shutdown", "clean" if "final check against the exchange: clean" in tail
                 else "not clean", "final check against the exchange: clean" in tail)  # fmt: skip
    ledger.check("unplanned engine exits", len(monitor.unplanned_exits), not monitor.unplanned_exits,
                 monitor.unplanned_exits)  # fmt: skip
    return int(report.get("as_of_ms") or 0)


def ledger_of(run: Run, monitor: Monitor) -> checks.Ledger:
    ledger = checks.Ledger()
    last_pass_ms = final_checks(run, monitor, ledger)
    intents, fills, reports = checks.read_journal(run.workdir / "journal.sqlite")
    cids = checks.check_audit(ledger, run.ex.audit(), intents)
    ours = checks.check_fills(ledger, run.ex, fills, cids, last_pass_ms)
    checks.check_logs(ledger, [life.log_path for life in run.engine.lives])
    checks.check_divergence(ledger, monitor.spans(run.jumps), monitor.bound_ms)
    checks.check_memory(ledger, run.engine.lives, run.plan.rss_bound_mb)
    figures(run, monitor, ledger, ours, reports)
    return ledger


def figures(run: Run, monitor: Monitor, ledger: checks.Ledger, fills: int, reports: list[dict[str, Any]]) -> None:
    plan = run.plan
    ledger.figure("seed / speed / symbols", f"{plan.seed} / {plan.speed:g}x / {','.join(plan.symbols)}")
    ledger.figure("simulated hours (lived / with jumps)", f"{plan.hours:g} / {(run.end_ms - run.t0_ms) / HOUR_MS:.1f}")
    kinds = Counter(_label(f) for f in run.ex.faults())
    ledger.figure("faults injected", sum(kinds.values()))
    for kind, n in sorted(kinds.items()):
        ledger.figure(f"  {kind}", n)
    trades = sum(1 for e in run.schedule if "trade" in e)
    ledger.figure("  out-of-band trades", trades)
    ledger.figure("engine SIGKILLs / restarts", f"{len(monitor.kills)} / {len(run.engine.lives) - 1}")
    ledger.figure("fills of our orders", fills)
    ledger.figure("halts cleared by the operator", len(monitor.halts))
    found = Counter(f["kind"] for r in reports for f in r.get("findings", []))
    ledger.figure("reconcile mismatches found (journal)", dict(found) or 0)
    ledger.figure("wall time", f"{time.monotonic() - run.wall_start:.0f} s")
    ledger.figure("machine", describe())


def _label(fault: dict[str, Any]) -> str:
    params = fault.get("params", {})
    extra = params.get("scope") or " ".join(str(params[k]) for k in ("method", "path", "status") if k in params)
    return f"{fault['kind']} {extra}".strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", action="store_true", help="the short variant of the test suite")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--hours", type=float)
    ap.add_argument("--speed", type=float)
    ap.add_argument("--kills", type=int)
    ap.add_argument("--rate", type=float, help="chaos events per exchange hour")
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args(argv)
    plan = SHORT if args.short else Plan()
    overrides = {k: getattr(args, k) for k in ("seed", "hours", "speed", "kills", "rate", "workdir") if getattr(args, k) is not None}
    plan = replace(plan, **overrides)
    run = start(plan)
    print(f"soak: seed {plan.seed}, {plan.hours:g} h at {plan.speed:g}x, work dir {run.workdir}", flush=True)
    # Observing two processes costs wall time, which the exchange's speed turns into minutes: 2 wall
    # seconds of it (two samples, a pass's requests on a busy machine) are allowed on top of a period.
    monitor = Monitor(run.ex, run.engine, plan.symbols, slack_ms=int(2_000 * plan.speed))
    try:
        soak(run, monitor)
        ledger = ledger_of(run, monitor)
    finally:
        if run.engine.alive():
            run.engine.terminate()
        run.sim.stop()
    print("\n".join(ledger.lines()), flush=True)
    return 0 if ledger.ok else 1


if __name__ == "__main__":
    sys.exit(main())
