"""Run the simulator in its own process for a benchmark, so its CPU and memory are not ours."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

_SERVE = """
import sys
from aegis.sim.config import SimConfig
from aegis.sim.server import serve
speed, weight, port = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
serve(SimConfig(speed=speed, weight_limit_1m=int(weight) if weight != "-" else None), port=port)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def sim_process(speed: float = 1.0, weight_limit_1m: int | None = None) -> Iterator[str]:
    """Yield the REST base URL of a simulator running in a child process (WS on the same port)."""
    port = free_port()
    weight = "-" if weight_limit_1m is None else str(weight_limit_1m)
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(speed), weight, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/fapi/v1/ping", timeout=1):
                    break
            except OSError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("simulator process did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        child.terminate()
        child.wait(10)
