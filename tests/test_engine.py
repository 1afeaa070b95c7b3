"""The real `aegis` process: serves /health and /state, keeps secrets out, stops cleanly on SIGTERM.

These wait on another process, so they run on the wall clock; every deadline is a generous hang
guard (the machine may be busy), and the assertions are about outcomes, never durations.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

from tests.harness import wait_for_process

SECRET = "s3cr3t-never-print-me-4d1f"
API_KEY = "k3y-never-print-me-77aa"


def _start(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    environ.update({"AEGIS_API_KEY": API_KEY, "AEGIS_API_SECRET": SECRET, "AEGIS_LOGGING__LEVEL": "DEBUG", **env})
    return subprocess.Popen(
        [sys.executable, "-m", "aegis", "run", "--sim", "--ops-port", "0", *args],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _ops_port(proc: subprocess.Popen[str], lines: list[str], timeout: float = 120) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"ops endpoint listening on http://127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match.group(1))
    raise AssertionError("engine never reported its ops port:\n" + "".join(lines))


def _trade_from_another_client(sim_url: str) -> None:
    """An order placed outside the engine (as from the Binance app), with its user-stream events."""
    body = json.dumps(
        {"api_key": API_KEY, "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.010", "events": True}
    ).encode()
    request = urllib.request.Request(f"{sim_url}/_sim/trade", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert json.loads(resp.read())["status"] == "FILLED"


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_sigterm_stops_the_engine_cleanly_and_secrets_never_show(tmp_path: Path) -> None:
    proc = _start(tmp_path, AEGIS_ENGINE__SHUTDOWN_TIMEOUT_S="5")
    lines: list[str] = []
    try:
        port = _ops_port(proc, lines)
        wait_for_process(lambda: _get(port, "/health")[0] == 200, 120, "/health 200 after the warm-up")
        status, health = _get(port, "/health")
        assert status == 200, health
        assert json.loads(health)["status"] == "ok"
        status, state = _get(port, "/state")
        assert status == 200
        body = json.loads(state)
        assert body["engine"]["profile"] == "sim"
        assert body["candles"]["BTCUSDT"]["count"] >= 1000  # the warm-up reached the store
        status, rows = _get(port, "/state/candles/BTCUSDT")
        assert status == 200 and len(json.loads(rows)) >= 1000
        _trade_from_another_client(body["engine"]["rest_url"])
        # the user stream brings it into the store
        wait_for_process(lambda: bool(json.loads(_get(port, "/state")[1])["positions"]), 60, "the trade in /state")
        state = _get(port, "/state")[1]
        positions = json.loads(state)["positions"]
        assert [(p["symbol"], Decimal(p["amount"])) for p in positions] == [("BTCUSDT", Decimal("0.010"))]
        assert json.loads(state)["streams"]["user"]["connected"] is True
        assert SECRET not in state and API_KEY not in state
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)  # a hang guard only
        lines.append(out)
        # Exit 0 means every task stopped within engine.shutdown_timeout_s (5 s) as the engine's own
        # clock measured it; a shutdown that ran over would exit 1 and say "did not stop in time".
        assert proc.returncode == 0, "".join(lines)
        assert "did not stop in time" not in "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    logs = "".join(lines)
    assert "engine stopped" in logs
    assert SECRET not in logs and API_KEY not in logs


def test_a_bounded_demo_exits_zero(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--duration", "2")
    out, _ = proc.communicate(timeout=120)  # a hang guard only
    assert proc.returncode == 0, out
    assert "demo finished" in out


def test_a_symbol_the_exchange_does_not_trade_is_refused_at_start(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--symbols", "BTCUSDT", "NOPEUSDT", "--duration", "30")
    out, _ = proc.communicate(timeout=120)  # a hang guard only
    assert proc.returncode == 2, out
    assert "symbols: not trading on this exchange: NOPEUSDT" in out
