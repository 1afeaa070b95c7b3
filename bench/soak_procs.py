"""The soak's two processes: a simulator and the engine, started, SIGKILLed and restarted, measured.

Both are real processes started the way an operator starts them (``python -m aegis.sim`` and
``aegis run --sim --sim-url``), each writing its log to a file of the soak's work directory. The
engine keeps one journal file across every restart, as it does under supervisord.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.sim_process import answers, free_port, wait_until_up

HANG_GUARD_S = 180.0  # start-up of either process on a busy machine; a hang guard, never a measure


def _clean_env() -> dict[str, str]:
    """The parent's environment without any AEGIS_* setting (the soak sets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}


@dataclass
class SimProcess:
    """``python -m aegis.sim`` at ``speed``, its clock pinned at ``start_ms``, real candles aligned."""

    workdir: Path
    speed: float
    start_ms: int
    port: int = field(default_factory=free_port)
    child: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.workdir / "sim.log").open("ab")
        cmd = [sys.executable, "-m", "aegis.sim", "--port", str(self.port), "--speed", f"{self.speed:g}",
               "--start-ms", str(self.start_ms), "--aligned"]  # fmt: skip
        self.child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_clean_env())
        wait_until_up(answers(f"{self.url}/fapi/v1/ping"), self.child, "simulator", HANG_GUARD_S)

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(20)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait(20)


@dataclass
class Incarnation:
    """One life of the engine process: from start to SIGKILL, exit or the end of the soak."""

    number: int
    pid: int
    started_wall: float
    log_path: Path
    rss_kb: list[tuple[float, int]] = field(default_factory=list)  # (wall seconds since start, VmRSS kB)
    exit_code: int | None = None
    killed: bool = False


@dataclass
class EngineProcess:
    """``aegis run --sim --sim-url URL`` with one journal file for all its restarts."""

    workdir: Path
    sim_url: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    child: subprocess.Popen[bytes] | None = None
    lives: list[Incarnation] = field(default_factory=list)

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def current(self) -> Incarnation:
        return self.lives[-1]

    def start(self) -> None:
        number = len(self.lives) + 1
        log_path = self.workdir / f"engine-{number}.log"
        env = {**_clean_env(), **self.env, "AEGIS_OPS__PORT": str(self.port)}
        cmd = [sys.executable, "-m", "aegis", "run", "--sim", "--sim-url", self.sim_url]
        with log_path.open("ab") as log:
            self.child = subprocess.Popen(cmd, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.lives.append(Incarnation(number, self.child.pid, time.monotonic(), log_path))
        wait_until_up(self._trading_ready, self.child, f"engine (life {number})", HANG_GUARD_S)

    def _trading_ready(self) -> bool:
        state = get_json(f"{self.ops_url}/state")
        return bool(state and (state.get("trading") or {}).get("ready"))

    def alive(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def exited(self) -> int | None:
        """The exit code if the engine stopped by itself (recorded once)."""
        if self.child is None or self.current.exit_code is not None:
            return None
        code = self.child.poll()
        if code is not None:
            self.current.exit_code = code
        return code

    def kill9(self) -> None:
        assert self.child is not None
        self.child.send_signal(signal.SIGKILL)
        self.current.exit_code = self.child.wait(30)
        self.current.killed = True

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait for the graceful stop; the exit code."""
        assert self.child is not None
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
        try:
            code = self.child.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.child.kill()
            code = self.child.wait(30)
        self.current.exit_code = code
        return code

    def sample_rss(self) -> None:
        if not self.alive():
            return
        life = self.current
        try:
            with open(f"/proc/{life.pid}/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        life.rss_kb.append((time.monotonic() - life.started_wall, int(line.split()[1])))
                        return
        except OSError:
            return


def get_json(url: str, timeout_s: float = 10.0) -> Any:
    """GET ``url`` and decode its JSON; None if it does not answer (a process that is down)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def send(method: str, url: str, body: Any = None, timeout_s: float = 60.0) -> Any:
    """A request with a JSON body (admin calls, ops actions); raises on an error status."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return json.loads(resp.read() or b"null")
