"""`aegis run --sim` as a user runs it (a real process): it trades, ends clean, reports; and its
terminal view renders in a real pseudo-terminal without mangling log lines."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.wallclock  # waits on another process

DEMO = {"AEGIS_SIM__START_MS": "1746432000000", "AEGIS_SIM__REPLAY_ALIGNED": "true"}
COLOUR = re.compile(r"\x1b\[[0-9;]*m")
# Cursor moves and line erases: on a terminal they put what follows on another line (rich redraws its
# live region above new log lines this way), so read as line breaks.
CURSOR = re.compile(r"\x1b\[[0-9;?]*[A-HJKSTfhl]|\x1b\][^\x07]*\x07|\r")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    return {**env, **DEMO, **extra}


def test_the_demo_trades_ends_equal_to_the_exchange_and_writes_its_report(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aegis", "run", "--sim", "--sim-speed", "600", "--ops-port", "0", "--duration", "15"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    log = proc.stderr
    assert proc.returncode == 0, log[-3000:]
    placed = re.search(r"summary: orders: .*placed (\d+)", log)
    assert placed and int(placed.group(1)) > 0, log[-3000:]
    assert "summary: rejections by code: 0" in log
    assert "summary: final check against the exchange: clean" in log
    reports = list((tmp_path / "reports").glob("aegis-sim-*.html"))
    assert len(reports) == 1
    html = reports[0].read_text(encoding="utf-8")
    assert "ae." in html and "equity" in html  # with our fills and the equity curve
    assert 'src="https://cdn.plot.ly' not in html  # self-contained: plotly.js is inlined, it opens offline


def test_the_terminal_view_renders_and_updates_without_corrupting_log_lines(tmp_path: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: aegis on a terminal
        os.chdir(tmp_path)
        os.execve(
            sys.executable,
            [sys.executable, "-m", "aegis", "run", "--sim", "--sim-speed", "300", "--ops-port", "0", "--duration", "8"],
            {**_env(), "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "50"},
        )
    chunks: list[bytes] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    screen = CURSOR.sub("\n", COLOUR.sub("", b"".join(chunks).decode("utf-8", "replace")))
    assert screen.count("equity") >= 3  # the view was drawn and redrawn
    assert "BTCUSDT" in screen and "position" in screen
    log_lines = [line for line in screen.splitlines() if "| INFO" in line]
    assert log_lines
    # Every log line starts with its timestamp: nothing of the view got glued in front of one.
    assert all(re.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z \| INFO", line) for line in log_lines), [
        line for line in log_lines if not re.match(r"^\d{4}-\d{2}-\d{2}", line)
    ][:5]
    assert "aegis run summary" in screen
