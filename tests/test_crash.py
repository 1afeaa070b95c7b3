"""A real ``aegis run`` killed with SIGKILL after it journaled an order and before the exchange's
answer reached it, then restarted on the same journal: the order is neither sent again nor
forgotten, and the engine's view equals the exchange's before it would trade again."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aegis.strategy.api import Context
from aegis.trading.intents import Intent
from tests.harness import wait_for_process

pytestmark = pytest.mark.wallclock  # two real processes
ROOT = Path(__file__).resolve().parents[1]
TARGET = Decimal("0.002")


class HoldTarget:
    """Holds a 0.002 BTC long: a bot that re-sent a lost order would end up holding twice that."""

    name = "hold-target"
    window = 1

    def on_candle(self, ctx: Context) -> Intent | None:
        return ctx.target(TARGET)


def _env(journal: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    return {
        **env,
        "AEGIS_JOURNAL__PATH": str(journal),
        "AEGIS_STRATEGY__PATH": "tests.test_crash:HoldTarget",
        "AEGIS_ORDERS__COUNTDOWN_CANCEL_S": "0",
        "PYTHONPATH": str(ROOT),
    }


def _http(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def _accepted_orders(sim: str) -> list[dict[str, Any]]:
    rows = _http(f"{sim}/_sim/audit")
    return [r for r in rows if r["method"] == "POST" and r["path"] == "/fapi/v1/order" and "orderId" in r]


def _journal_events(journal: Path) -> dict[str, list[str]]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        intents = [r[0] for r in db.execute("SELECT client_id FROM intents")]
        return {cid: [r[0] for r in db.execute("SELECT kind FROM events WHERE client_id=? ORDER BY seq", (cid,))] for cid in intents}


def _evaluations(ops_url: str) -> int:
    strategy = _http(f"{ops_url}/state").get("strategy")
    return int(strategy["evaluations"]) if strategy else 0


def _engine(sim: str, journal: Path, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "aegis", "run", "--sim-url", sim, "--symbols", "BTCUSDT", "--ops-port", "0"]
    return subprocess.Popen(argv, cwd=ROOT, env=_env(journal), stdout=subprocess.DEVNULL, stderr=log.open("wb"))


def test_sigkill_between_the_journal_and_the_answer_sends_nothing_twice_and_forgets_nothing(tmp_path: Path) -> None:
    sim_proc = subprocess.Popen(
        [sys.executable, "-m", "aegis", "sim", "--port", "0", "--speed", "60"],
        cwd=ROOT, env=_env(tmp_path / "unused"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    engines: list[subprocess.Popen[bytes]] = []
    try:
        assert sim_proc.stdout is not None
        match = re.search(r"REST (http://\S+)", sim_proc.stdout.readline())
        assert match, "the simulator did not say where it listens"
        sim = match.group(1)
        # The first order is accepted, then its answer is held back and its user-stream events and
        # query results lag a minute behind (Binance's lag): the engine cannot learn it before the kill.
        _http(f"{sim}/_sim/faults", "POST", {"kind": "unknown_outcome", "path": "/fapi/v1/order", "mode": "timeout", "hold_s": 600})
        _http(f"{sim}/_sim/faults", "POST", {"kind": "order_lag", "seconds": 60, "events": "delayed"})
        journal = tmp_path / "journal.sqlite"
        engines.append(_engine(sim, journal, tmp_path / "first.log"))
        wait_for_process(lambda: bool(_accepted_orders(sim)) or engines[0].poll() is not None, 180, "the first order")
        (order,) = _accepted_orders(sim)
        cid = order["clientOrderId"]
        assert _journal_events(journal)[cid] == []  # journaled, never answered
        engines[0].send_signal(signal.SIGKILL)
        engines[0].wait(30)

        engines.append(_engine(sim, journal, tmp_path / "second.log"))
        second_log = tmp_path / "second.log"
        wait_for_process(lambda: "trading ready" in second_log.read_text() or engines[1].poll() is not None, 180, "restart")
        ops = re.search(r"ops endpoint listening on (\S+)", second_log.read_text())
        assert ops, second_log.read_text()[-3000:]
        wait_for_process(lambda: _evaluations(ops.group(1)) >= 3, 180, "three candles evaluated after the restart")
        engines[1].send_signal(signal.SIGTERM)
        assert engines[1].wait(60) == 0
        log = second_log.read_text()
        assert [r["clientOrderId"] for r in _accepted_orders(sim)] == [cid]  # sent once, never again
        assert "acked" in _journal_events(journal)[cid]  # learned after the restart, not forgotten
        assert log.index("reconcile (start-up): clean") < log.index("trading ready")
        assert "summary: final check against the exchange: clean" in log
        assert re.search(r"summary: orders: nothing \d+\n", log), log[-3000:]  # the target was already held
        assert "summary: orders filled / fills: 1 / 1" in log  # the order's trade, fetched after the restart
    finally:
        for proc in [*engines, sim_proc]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
