"""aegis backtest against freqtrade and nautilus_trader: same candles, same rules, same clock (issue 16).

Run: ``make bench-peers`` (makes ``.venv-peers`` with the pinned peers from PyPI, then runs this);
or ``.venv/bin/python -m bench.bench_peers --peers-python .venv-peers/bin/python [--runs 5 --days 30]``.
Without a peers' venv (``make bench`` runs every bench_*.py) only the 50-symbol aegis case runs.

Each figure is the median of ``--runs`` fresh processes per runner, the runners interleaved so a
change of the shared machine's load falls on all of them. aegis runs through bench_backtest's
child (the whole ``aegis backtest``: simulator and live engine on one virtual clock); each peer
through its runner in bench/peers/ with the peers' python, on the same candles: the real
BTCUSDT/ETHUSDT 1m candles shipped in aegis/sim/data and, for the ten-symbol case, eight
symbols replaying the BTCUSDT candles rescaled to their tick size (written as CSV files here, the
``--data`` files of aegis). Timed alike: candles/s from the first replayed candle to the report
(start-up apart: imports, reading the candles, building the engine), and counting start-up. The
rules are aegis' example strategy, ported to each peer (bench/peers/ says where they differ);
round trips and fills show whether they traded comparably.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bench_backtest import DAY_MS, EXTRA, START, measure, rescale
from bench.machine import describe

ROOT = Path(__file__).parent.parent
PEERS_DIR = Path(__file__).parent / "peers"
DEFAULT_PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
RUNNERS = {"freqtrade": "freqtrade_run.py", "nautilus_trader": "nautilus_run.py"}
WARMUP = 141  # the example strategy's window: 10 * max(rsi_period, atr_period) + 1
PARAMS = {"rsi_period": 14, "oversold": 30.0, "overbought": 70.0, "exit_rsi": 50.0, "atr_period": 14,
          "stop_atr": 2.0, "take_profit_atr": 3.0, "notional": 200.0}  # fmt: skip
MIB = 1024 * 1024


def start_ms() -> int:
    from aegis.backtest.plan import parse_time

    return parse_time("--from", START)


def usdt_perpetuals(count: int) -> list[str]:
    """BTCUSDT, ETHUSDT, the EXTRA symbols, then exchangeInfo's other trading USDT perpetuals by name."""
    from aegis.sim.config import EXCHANGE_INFO_PATH

    info = json.loads(EXCHANGE_INFO_PATH.read_text(encoding="utf-8"))["symbols"]
    others = sorted(
        s["symbol"] for s in info
        if s.get("contractType") == "PERPETUAL" and s["quoteAsset"] == "USDT" and s["status"] == "TRADING"
    )  # fmt: skip
    head = ["BTCUSDT", "ETHUSDT", *EXTRA]
    return (head + [s for s in others if s not in head])[:count]


def candle_files(symbols: list[str], extra: dict[str, Path]) -> dict[str, str]:
    from aegis.sim.config import DATA_DIR

    return {s: str(extra[s] if s in extra else DATA_DIR / f"binance_usdm_{s}_1m.csv.gz") for s in symbols}


# --- one process of each runner ---------------------------------------------------------------


def run_aegis(symbols: list[str], days: int, data: Path | None, out: Path) -> dict[str, Any]:
    """bench_backtest's child, plus the round trips and fills of the report files it wrote."""
    result = measure(symbols, days, data, out)
    result["trades"] = count_rows(out / "trades.csv")
    result["fills"] = count_rows(out / "fills.csv")
    return result


def count_rows(path: Path) -> int:
    with path.open(encoding="utf-8") as fh:
        return max(0, sum(1 for _ in csv.reader(fh)) - 1)


def run_peer(python: Path, peer: str, command: str, spec: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [str(python), str(PEERS_DIR / RUNNERS[peer]), command, str(spec)],
        capture_output=True, text=True, check=False, cwd=ROOT, env=peer_env(),
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or (command == "run" and not lines):
        raise RuntimeError(f"{peer} {command} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(lines[-1]) if lines else {}


def peer_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AEGIS_", "VIRTUAL_ENV", "PYTHON"))}


def peer_versions(python: Path) -> dict[str, str]:
    names = json.dumps(list(RUNNERS))
    code = f"import json, importlib.metadata as m; print(json.dumps({{p: m.version(p) for p in {names}}}))"
    proc = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True, env=peer_env()
    )
    versions: dict[str, str] = json.loads(proc.stdout)
    return versions


# --- cases and the table ------------------------------------------------------------------------


def summarize(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Medians over the fresh processes of one runner on one case."""
    med: Callable[[str], float] = lambda key: statistics.median(float(r[key]) for r in runs)  # noqa: E731
    return {
        "rate": statistics.median(r["candles"] / r["seconds"] for r in runs),
        "rate_total": statistics.median(r["candles"] / r["total"] for r in runs),
        "startup": med("startup"), "peak": med("peak"), "trades": med("trades"), "fills": med("fills"),
        "candles": float(runs[0]["candles"]),
    }  # fmt: skip


def print_case(label: str, rows: dict[str, dict[str, float]]) -> None:
    candles = next(iter(rows.values()))["candles"]
    print(f"\n  {label}: {candles:,.0f} candles")
    print(
        f"    {'':26} {'candles/s':>10} {'with start-up':>14} {'start-up s':>11} {'peak RSS MiB':>13} {'round trips':>12} {'fills':>6}"
    )
    for name, r in rows.items():
        print(
            f"    {name:26} {r['rate']:10,.0f} {r['rate_total']:14,.0f} {r['startup']:11.1f} {r['peak'] / MIB:13.0f}"
            f" {r['trades']:12.0f} {r['fills']:6.0f}"
        )
    aegis = rows.get("aegis")
    for name, r in rows.items():
        if aegis is not None and name != "aegis":
            print(
                f"    aegis / {name}: {aegis['rate'] / r['rate']:.2f}x  ({aegis['rate_total'] / r['rate_total']:.2f}x counting start-up)"
            )


def compare(label: str, symbols: list[str], days: int, extra: dict[str, Path], work: Path,
            peers: dict[str, str], python: Path | None, runs: int) -> dict[str, dict[str, float]]:  # fmt: skip
    """Every runner on one case, ``runs`` fresh processes each, interleaved."""
    needs_data = any(s in extra for s in symbols)
    spec = {
        "symbols": symbols, "files": candle_files(symbols, extra), "from_ms": start_ms(),
        "to_ms": start_ms() + days * DAY_MS, "warmup": WARMUP, "params": PARAMS,
        "taker_fee": 0.0005, "maker_fee": 0.0002,  # the simulator's defaults (aegis/sim/config.py)
        "exchange_info": str(Path(__file__).parent.parent / "aegis" / "sim" / "data" / "exchangeInfo.json"),
    }  # fmt: skip
    specs: dict[str, Path] = {}
    for peer in peers:
        spec_path = work / f"{peer}-{len(symbols)}-{days}.json"
        spec_path.write_text(
            json.dumps({**spec, "workdir": str(work / f"{peer}-{len(symbols)}-{days}")}), encoding="utf-8"
        )
        assert python is not None
        run_peer(python, peer, "prepare", spec_path)
        specs[peer] = spec_path
    results: dict[str, list[dict[str, Any]]] = {"aegis": []} | {p: [] for p in peers}
    for _ in range(runs):
        results["aegis"].append(
            run_aegis(symbols, days, work / "data" if needs_data else None, work / "report")
        )
        for peer in peers:
            assert python is not None
            results[peer].append(run_peer(python, peer, "run", specs[peer]))
    rows = {("aegis" if n == "aegis" else f"{n} {peers[n]}"): summarize(r) for n, r in results.items()}
    print_case(label, rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_peers", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--peers-python", type=Path, default=DEFAULT_PEERS_PYTHON, help="python of the peers' venv"
    )
    ap.add_argument(
        "--runs",
        type=int,
        default=int(os.environ.get("BENCH_PEERS_RUNS", "3")),
        help="fresh processes per figure",
    )
    ap.add_argument(
        "--days",
        type=int,
        default=int(os.environ.get("BENCH_PEERS_DAYS", "7")),
        help="days replayed (at most 29)",
    )
    ap.add_argument("--wide-days", type=int, default=1, help="days of the 50-symbol aegis case")
    ap.add_argument("--peers", default=",".join(RUNNERS), help="comma-separated: freqtrade,nautilus_trader")
    args = ap.parse_args(argv)
    print(f"machine: {describe()}")
    print(f"medians of {args.runs} fresh processes per figure; candles/s from the first candle to the report")
    python: Path | None = args.peers_python if args.peers_python.exists() else None
    peers: dict[str, str] = {}
    if python is None:
        print(
            f"  peers skipped: no {args.peers_python} (`make bench-peers` installs them); aegis' 50-symbol case only"
        )
    else:
        versions = peer_versions(python)
        peers = {p: versions[p] for p in args.peers.split(",") if p}
        print("peers: " + ", ".join(f"{p} {v}" for p, v in peers.items()) + f" ({python})")
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        work = Path(tmp)
        wide = usdt_perpetuals(50)
        (work / "data").mkdir()
        extra = rescale(
            work / "data", list(EXTRA), start_ms() + (max(args.days, args.wide_days) + 1) * DAY_MS
        )
        rest = [s for s in wide if s not in ("BTCUSDT", "ETHUSDT", *EXTRA)]
        extra |= rescale(work / "data", rest, start_ms() + (args.wide_days + 1) * DAY_MS)
        if peers:
            compare(
                f"BTCUSDT, {args.days} days", ["BTCUSDT"], args.days, extra, work, peers, python, args.runs
            )
            ten = ["BTCUSDT", "ETHUSDT", *EXTRA]
            compare(f"10 symbols, {args.days} days", ten, args.days, extra, work, peers, python, args.runs)
        compare(
            f"50 symbols, {args.wide_days} day(s), aegis only",
            wide,
            args.wide_days,
            extra,
            work,
            {},
            None,
            args.runs,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
