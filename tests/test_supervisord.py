"""aegis under a real supervisord (from PyPI), with the [program:aegis] semantics of deploy/supervisord.conf.

The program runs ``aegis run --sim --sim-url`` against an ``aegis sim`` process, trading every
candle (the tests' Alternating strategy) so that restarts and a kill -9 land while orders are in
flight. What an operator relies on is checked through supervisord's own state and log, the ops
endpoint, the journal file and the simulator's audit of every order request it received:

* RUNNING, /health 200; ``supervisorctl restart`` stops it gracefully (exit 0) and it comes back;
* kill -9: supervisord brings it back, nothing is lost (every order the exchange accepted is in
  the journal, written ahead), no order is placed twice, the next reconcile pass is clean;
* SIGTERM: a graceful exit 0 that supervisord expects (EXITED, no restart), the listenKey closed
  on the exchange, the journal's last record says the engine stopped;
* a configuration error: FATAL at once with its one line, exit status 2, never a restart loop.

Wall clock (other processes): every wait is a generous hang guard; assertions are about outcomes.
"""

from __future__ import annotations

import configparser
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from supervisor.xmlrpc import SupervisorTransport

from aegis.sim.config import DEMO_API_KEY, DEMO_API_SECRET
from tests.harness import wait_for_process

pytestmark = pytest.mark.wallclock

REPO = Path(__file__).resolve().parent.parent
DEPLOY_CONF = REPO / "deploy" / "supervisord.conf"
BIN = Path(sys.executable).parent
GUARD_S = 240.0  # hang guard for anything that waits on supervisord or the engine
# The semantics copied from deploy/supervisord.conf; paths, user and the command are the test's own.
SEMANTICS = ("autorestart", "exitcodes", "startsecs", "startretries", "stopsignal", "stopwaitsecs", "redirect_stderr")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AEGIS_")}
    env["PYTHONPATH"] = str(REPO)  # the program imports the tests' strategy
    return env


def _deploy_semantics() -> dict[str, str]:
    conf = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    conf.read(DEPLOY_CONF, encoding="utf-8")
    program = conf["program:aegis"]
    return {key: program[key] for key in SEMANTICS}


class Supervisord:
    """A supervisord in the foreground with its socket, log and pidfile in a temporary directory."""

    def __init__(self, home: Path, programs: dict[str, dict[str, str]]) -> None:
        self.home = home
        self.sock = Path(tempfile.mkdtemp(prefix="sv")) / "s.sock"  # AF_UNIX paths are short
        self.log = home / "supervisord.log"
        self.conf = home / "supervisord.conf"
        lines = [
            "[unix_http_server]", f"file={self.sock}",
            "[supervisord]", f"logfile={self.log}", f"pidfile={home / 'supervisord.pid'}",
            f"childlogdir={home}", "nodaemon=true", "loglevel=info",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "[supervisorctl]", f"serverurl=unix://{self.sock}",
        ]  # fmt: skip
        for name, keys in programs.items():
            lines.append(f"[program:{name}]")
            lines += [f"{k}={v}" for k, v in keys.items()]
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.proc = subprocess.Popen(
            [str(BIN / "supervisord"), "-c", str(self.conf)], env=_clean_env(), cwd=home,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_process(self._answers, GUARD_S, "supervisord answering on its socket")

    def _rpc(self) -> Any:
        """supervisord's XML-RPC interface (a new connection per call: a failed one is not reusable)."""
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{self.sock}"))

    def _answers(self) -> bool:
        try:
            return bool(self._rpc().supervisor.getState()["statename"] == "RUNNING")
        except (OSError, http.client.HTTPException, xmlrpc.client.Fault):
            return False

    def info(self, name: str = "aegis") -> dict[str, Any]:
        info: dict[str, Any] = self._rpc().supervisor.getProcessInfo(name)
        return info

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """supervisorctl, as an operator types it."""
        return subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(self.conf), *args], capture_output=True, text=True, timeout=GUARD_S
        )

    def wait_state(self, state: str, name: str = "aegis", *, not_pid: int | None = None) -> dict[str, Any]:
        def reached() -> bool:
            info = self.info(name)
            return bool(info["statename"] == state and (not_pid is None or info["pid"] != not_pid))

        wait_for_process(reached, GUARD_S, f"{name} {state} (now {self.info(name)})", step=0.25)
        return self.info(name)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def shutdown(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # supervisord stops its programs, then itself
            try:
                self.proc.wait(timeout=GUARD_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[str]:
    """``aegis sim`` in its own process at 10x (a candle every 6 wall seconds); its REST base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aegis", "sim", "--port", "0", "--speed", "10"],
        cwd=tmp_path, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the simulator prints its URLs once it listens
        match = re.search(r"REST (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=GUARD_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _program(tmp_path: Path, sim_url: str, ops_port: int | None, **env: str) -> dict[str, str]:
    """deploy/supervisord.conf's [program:aegis], pointed at the test's simulator and files."""
    (tmp_path / "api_key").write_text(DEMO_API_KEY, encoding="utf-8")
    (tmp_path / "api_secret").write_text(DEMO_API_SECRET, encoding="utf-8")
    environment = {
        "AEGIS_API_KEY_FILE": str(tmp_path / "api_key"),
        "AEGIS_API_SECRET_FILE": str(tmp_path / "api_secret"),
        "AEGIS_LOGGING__JSON": "true",
        "AEGIS_SYMBOLS": "BTCUSDT",
        "AEGIS_MARKET__HISTORY_CANDLES": "100",
        "AEGIS_JOURNAL__PATH": str(tmp_path / "journal.sqlite"),
        "AEGIS_ENGINE__REPORT_DIR": str(tmp_path / "reports"),
        "AEGIS_STRATEGY__PATH": "tests.test_strategy:Alternating",
        **env,
    }
    return {
        "command": f"{sys.executable} -m aegis run --sim --sim-url {sim_url}" + (f" --ops-port {ops_port}" if ops_port else ""),
        "directory": str(tmp_path),
        "environment": ",".join(f'{k}="{v}"' for k, v in environment.items()),
        "autostart": "true",
        "stdout_logfile": str(tmp_path / "aegis.log"),
        **_deploy_semantics(),
    }


def _get(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


def _wait_healthy(ops: str) -> None:
    wait_for_process(lambda: _get(f"{ops}/health")[0] == 200, GUARD_S, f"/health 200 ({_get(f'{ops}/health')})", step=0.5)


def _accepted_orders(sim_url: str) -> list[dict[str, Any]]:
    status, rows = _get(f"{sim_url}/_sim/audit?api_key={DEMO_API_KEY}")
    assert status == 200
    return [r for r in rows if r["method"] == "POST" and r["path"] == "/fapi/v1/order" and "orderId" in r]


def _wait_orders(sim_url: str, at_least: int) -> None:
    wait_for_process(lambda: len(_accepted_orders(sim_url)) >= at_least, GUARD_S, f"{at_least} orders accepted", step=0.5)


def _journal(path: Path) -> tuple[set[str], list[dict[str, Any]]]:
    """The journal as another process sees it: intents written ahead, and the engine's own records."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        intents = {row[0] for row in db.execute("SELECT client_id FROM intents")}
        engine = [json.loads(row[0]) for row in db.execute("SELECT body FROM reports WHERE kind = 'engine' ORDER BY seq")]
    return intents, engine


def test_supervisord_runs_restarts_revives_after_kill_9_and_stops_aegis_gracefully(tmp_path: Path, sim: str) -> None:
    ops_port = _free_port()
    ops = f"http://127.0.0.1:{ops_port}"
    sv = Supervisord(tmp_path, {"aegis": _program(tmp_path, sim, ops_port)})
    try:
        first = sv.wait_state("RUNNING")
        _wait_healthy(ops)
        _wait_orders(sim, 2)

        # supervisorctl restart: a graceful stop (exit 0), then a new process
        assert "started" in sv.ctl("restart", "aegis").stdout
        second = sv.wait_state("RUNNING", not_pid=first["pid"])
        assert "stopped: aegis (exit status 0)" in sv.log_text()
        _wait_healthy(ops)

        # kill -9 while it trades: supervisord brings it back; nothing lost, nothing twice
        placed = len(_accepted_orders(sim))
        _wait_orders(sim, placed + 1)
        os.kill(second["pid"], signal.SIGKILL)
        third = sv.wait_state("RUNNING", not_pid=second["pid"])
        assert "exited: aegis (terminated by SIGKILL; not expected)" in sv.log_text()
        _wait_healthy(ops)
        _wait_orders(sim, len(_accepted_orders(sim)) + 2)  # trading resumed after recovery
        status, report = _get(f"{ops}/reconcile", method="POST")
        assert status == 200 and report["clean"], report

        # SIGTERM (what supervisorctl stop sends): exit 0, expected, not restarted
        os.kill(third["pid"], signal.SIGTERM)
        info = sv.wait_state("EXITED")
        assert info["exitstatus"] == 0
        assert "exited: aegis (exit status 0; expected)" in sv.log_text()
    finally:
        sv.shutdown()

    accepted = _accepted_orders(sim)
    client_ids = [r["clientOrderId"] for r in accepted]
    assert len(client_ids) == len(set(client_ids)), "an order was placed twice"
    intents, engine_records = _journal(tmp_path / "journal.sqlite")
    assert set(client_ids) <= intents, "an order the exchange accepted is missing from the journal"
    assert engine_records[-1].get("stopped") is True  # the journal's last word: a clean stop
    # the exchange no longer keeps the account's listenKey alive: a keepalive finds none (-1125)
    status, body = _get(f"{sim}/fapi/v1/listenKey", method="PUT", headers={"X-MBX-APIKEY": DEMO_API_KEY})
    assert (status, body["code"]) == (400, -1125), body


def test_a_configuration_error_is_fatal_at_once_with_exit_2_and_no_restart_loop(tmp_path: Path) -> None:
    program = _program(tmp_path, "http://127.0.0.1:9", None, AEGIS_OPS__PORT="-1")
    sv = Supervisord(tmp_path, {"aegis": program})
    try:
        info = sv.wait_state("FATAL")
        log = sv.log_text()
    finally:
        sv.shutdown()
    assert log.count("spawned: 'aegis'") == 1, log  # started once, never again
    assert "exited: aegis (exit status 2; not expected)" in log
    assert "entered FATAL state" in log
    assert "Exited too quickly" in info["description"]
    lines = (tmp_path / "aegis.log").read_text(encoding="utf-8").strip().splitlines()
    assert lines == [
        "aegis: invalid configuration: ops.port: Input should be greater than or equal to 0 (got '-1') [from AEGIS_OPS__PORT]"
    ]
