"""Run the simulator in its own process for a benchmark, so its CPU and memory are not ours.

Benchmarks measure throughput in real time, so waiting for a child process to come up is on the
wall clock; ``wait_until_up`` is the one place that does it, its deadline only a hang guard.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aegis.sim.config import SimConfig

KLINE_UPDATE_MS = SimConfig().kline_update_ms

_SERVE = """
import sys
from aegis.sim.config import SimConfig
from aegis.sim.server import serve
speed, weight, port, update_ms = float(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
serve(SimConfig(speed=speed, weight_limit_1m=int(weight) if weight != "-" else None, kline_update_ms=update_ms), port=port)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(ready: Callable[[], bool], child: subprocess.Popen[Any], what: str, hang_guard_s: float = 60) -> None:
    """Poll ``ready()`` until the child answers; fail if it exits or hangs past ``hang_guard_s``."""
    deadline = time.monotonic() + hang_guard_s
    while not ready():
        if child.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.05)


def answers(url: str) -> Callable[[], bool]:
    """A ``ready`` check: ``url`` answers 200."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    return check


@dataclass(frozen=True)
class SimChild:
    """A running simulator process: its REST base URL (WS on the same port) and its pid."""

    url: str
    pid: int


@contextlib.contextmanager
def sim_child(
    speed: float = 1.0, weight_limit_1m: int | None = None, kline_update_ms: int = KLINE_UPDATE_MS
) -> Iterator[SimChild]:
    """A simulator in a child process; ``kline_update_ms`` is its open-candle update cadence (exchange ms)."""
    port = free_port()
    weight = "-" if weight_limit_1m is None else str(weight_limit_1m)
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(speed), weight, str(port), str(kline_update_ms)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(answers(f"{url}/fapi/v1/ping"), child, "simulator process")
        yield SimChild(url, child.pid)
    finally:
        child.terminate()
        child.wait(10)


@contextlib.contextmanager
def sim_process(speed: float = 1.0, weight_limit_1m: int | None = None) -> Iterator[str]:
    """Yield the REST base URL of a simulator running in a child process (WS on the same port)."""
    with sim_child(speed, weight_limit_1m) as sim:
        yield sim.url
