"""What both peer runners share: the spec, the candles, the figures line. Standard library only.

Run by the peers' python (``.venv-peers``), imported from the runner's own directory.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import resource
import time
from pathlib import Path
from typing import Any

BEGUN = time.perf_counter()  # the runners import this first: start-up is counted from here
MINUTE_MS = 60_000


def load_spec(path: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return spec


def first_ms(spec: dict[str, Any]) -> int:
    """The first candle any peer reads: --from less the strategy's warm-up window, as aegis."""
    return int(spec["from_ms"]) - int(spec["warmup"]) * MINUTE_MS


def candles(spec: dict[str, Any], symbol: str) -> list[tuple[int, str, str, str, str, str]]:
    """(open_time_ms, open, high, low, close, volume) from the warm-up's start to --to, as in the file."""
    path = Path(spec["files"][symbol])
    raw = gzip.open(path, "rt", encoding="ascii") if path.suffix == ".gz" else path.open(encoding="ascii")
    lo, hi = first_ms(spec), int(spec["to_ms"])
    with raw as fh:
        reader = csv.reader(io.StringIO(fh.read()))
        next(reader)
        rows = [(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in reader]
    return [r for r in rows if lo <= r[0] < hi]


def in_range(spec: dict[str, Any]) -> int:
    """Candles between --from and --to, all symbols: what aegis counts (its warm-up is not)."""
    per = (int(spec["to_ms"]) - int(spec["from_ms"])) // MINUTE_MS
    return per * len(spec["symbols"])


def emit(first: float, report: float, candles_done: int, trades: int, fills: int) -> None:
    """One JSON line, the same keys as bench_backtest's child."""
    ended = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({
        "code": 0, "candles": candles_done, "trades": trades, "fills": fills,
        "seconds": report - first, "startup": first - BEGUN, "total": ended - BEGUN, "peak": peak,
    }), flush=True)  # fmt: skip
