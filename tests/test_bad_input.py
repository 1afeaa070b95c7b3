"""Bad input gets one line and a clear exit code, never a traceback (issue: faults probed from outside)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from loguru import logger

from aegis.config import ConfigError, load_settings
from aegis.ops.server import OpsServer
from aegis.redact import REDACTED, redact, register_secret
from aegis.state import StateStore
from tests.logstate import LineSink, restored_logging


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("AEGIS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    with restored_logging():
        yield


def aegis(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("AEGIS_")}
    return subprocess.run(
        [sys.executable, "-m", "aegis", *args], env={**base, **(env or {})}, cwd=cwd,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def one_line(text: str) -> str:
    lines = [line for line in text.strip("\n").split("\n") if line]
    assert "Traceback" not in text, text
    return lines[-1]


def busy_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


def test_a_settings_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_bytes(b'symbols = ["BTCUSDT"]\n# caf\xe9\n')
    proc = aegis("config", cwd=tmp_path)
    assert proc.returncode == 2
    assert "not UTF-8" in one_line(proc.stderr) and "settings.toml" in proc.stderr


def test_an_unwritable_log_file_is_one_line_and_no_directory_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "deeper" / "aegis.log"
    proc = aegis("run", "--duration", "1", cwd=tmp_path, env={"AEGIS_LOGGING__FILE": str(missing)})
    assert proc.returncode == 2
    assert "logging.file" in one_line(proc.stderr) and "does not exist" in proc.stderr
    assert not (tmp_path / "nope").exists()


def test_the_ops_port_in_use_names_the_port_and_the_setting(tmp_path: Path) -> None:
    sock, port = busy_port()
    with sock:
        proc = aegis("run", "--ops-port", str(port), "--duration", "30", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    text = proc.stderr
    assert "Traceback" not in text and f"127.0.0.1:{port}" in text and "ops.port" in text


def test_aegis_sim_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    sock, port = busy_port()
    with sock:
        proc = aegis("sim", "--port", str(port), cwd=tmp_path)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert f"127.0.0.1:{port}" in line and "sim.port" in line


def test_an_unknown_top_level_variable_is_an_error_like_an_unknown_nested_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_SYMBOL", "ETHUSDT")  # a typo of AEGIS_SYMBOLS
    with pytest.raises(ConfigError, match="AEGIS_SYMBOL: unknown setting"):
        load_settings()
    monkeypatch.delenv("AEGIS_SYMBOL")
    monkeypatch.setenv("AEGIS_CONFIG", "settings.toml")  # known: not a setting but read by aegis
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()


@pytest.mark.parametrize("value", ["yes", "1", "on", "t"])
def test_allow_live_takes_only_a_real_boolean(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AEGIS_ALLOW_LIVE", value)
    with pytest.raises(ConfigError, match="allow_live: must be true or false"):
        load_settings()
    monkeypatch.setenv("AEGIS_ALLOW_LIVE", "TRUE")
    assert load_settings().allow_live is True


def test_a_very_short_secret_does_not_mangle_every_log_line() -> None:
    register_secret("ab")
    assert redact("about a table") == "about a table"
    assert redact("secret=ab;") == f"secret={REDACTED};"


async def test_malformed_http_to_the_ops_port_is_a_debug_line_not_an_error() -> None:
    lines: list[str] = []
    from aegis.config import LoggingSettings
    from aegis.ops.logs import setup_logging

    setup_logging(LoggingSettings(level="DEBUG"), stream=LineSink(lines))
    server = OpsServer(StateStore(), port=0)
    port = await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
        await writer.drain()
        await reader.read()
        writer.close()
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/health") as resp:
            assert resp.status == 200  # the endpoint keeps serving
    finally:
        await server.stop()
        logger.remove()
    text = "".join(lines)
    assert "ERROR" not in text and "Traceback" not in text

