"""The aegis command: exit codes, one-line errors, masked config, wiring to engine and simulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from aegis import cli
from aegis.config import Settings
from tests.logstate import restored_logging

SECRET = "sEcReT-0123456789-abcdef"
KEY = "kEy-9876543210-fedcba"
AEGIS_SCRIPT = Path(sys.executable).with_name("aegis")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("AEGIS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    # `aegis run` configures logging for the process; undo it for the other tests.
    with restored_logging():
        yield


def run_aegis(*args: str, env: dict[str, str] | None = None, cwd: Path, module: bool = False) -> subprocess.CompletedProcess[str]:
    """The real entry point in a fresh process: the console script, or ``python -m aegis``."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("AEGIS_")}
    command = [sys.executable, "-m", "aegis"] if module else [str(AEGIS_SCRIPT)]
    return subprocess.run(
        [*command, *args], env={**base, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def one_line(err: str) -> str:
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- real processes


def test_bad_env_value_exits_2_with_one_line_via_python_m(tmp_path: Path) -> None:
    proc = run_aegis("config", env={"AEGIS_OPS__PORT": "-1"}, cwd=tmp_path, module=True)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert line.startswith("aegis: invalid configuration: ops.port: ")
    assert proc.stdout == ""


@pytest.mark.skipif(not AEGIS_SCRIPT.exists(), reason="console script not installed (pip install -e .)")
def test_unknown_key_exits_2_via_console_script(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text("[engine]\nshutdown_timout_s = 5\n", encoding="utf-8")
    proc = run_aegis("run", cwd=tmp_path)
    assert proc.returncode == 2
    assert "engine.shutdown_timout_s: unknown setting" in one_line(proc.stderr)


@pytest.mark.skipif(not AEGIS_SCRIPT.exists(), reason="console script not installed (pip install -e .)")
def test_config_command_never_prints_the_secret(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    env = {"AEGIS_API_KEY": KEY, "AEGIS_API_SECRET_FILE": str(secret_file)}
    for fmt in ("toml", "json"):
        proc = run_aegis("config", "--format", fmt, env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert SECRET not in proc.stdout + proc.stderr and KEY not in proc.stdout + proc.stderr
        assert "**********" in proc.stdout


@pytest.mark.skipif(not AEGIS_SCRIPT.exists(), reason="console script not installed (pip install -e .)")
def test_run_demo_end_to_end_keeps_secrets_out_of_the_log(tmp_path: Path) -> None:
    """The real engine on the embedded simulator, with configured keys that must never be logged."""
    env = {"AEGIS_API_KEY": KEY, "AEGIS_API_SECRET": SECRET, "AEGIS_LOGGING__LEVEL": "DEBUG"}
    proc = run_aegis("run", "--sim", "--duration", "20", "--ops-port", "0", env=env, cwd=tmp_path)  # past start-up, even on a busy machine
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and KEY not in proc.stdout + proc.stderr


@pytest.mark.skipif(not AEGIS_SCRIPT.exists(), reason="console script not installed (pip install -e .)")
def test_sim_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("AEGIS_")}
    proc = subprocess.Popen(
        [str(AEGIS_SCRIPT), "sim", "--port", "0"], env=base, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("aegis.sim REST http://127.0.0.1:"), first
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0  # a hang guard only
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- in process


BAD_CASES = [
    ("wrong-type", ["config", "--ops-port", "abc"], "ops.port: "),
    ("unknown-profile", ["config"], "profile: "),
    ("negative-interval", ["config", "--sim-speed", "-2"], "sim.speed: "),
    ("bad-symbol", ["config", "--symbols", "BTC/USDT"], "symbols: "),
    ("bad-sim-url", ["run", "--sim-url", "localhost"], "sim.url: "),
]


@pytest.mark.parametrize(("argv", "field"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_bad_values_exit_2_naming_the_field(
    argv: list[str], field: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if argv == ["config"]:
        monkeypatch.setenv("AEGIS_PROFILE", "paper")
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert one_line(captured.err).startswith(f"aegis: invalid configuration: {field}")
    assert captured.out == ""


def test_live_without_allow_live_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEGIS_API_KEY", KEY)
    monkeypatch.setenv("AEGIS_API_SECRET", SECRET)
    called = _fake_engine(monkeypatch)
    assert cli.main(["run", "--live"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "allow_live" in line and SECRET not in line
    assert called == []


def test_live_from_config_still_needs_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEGIS_API_KEY", KEY)
    monkeypatch.setenv("AEGIS_API_SECRET", SECRET)
    (tmp_path / "settings.toml").write_text('profile = "live"\nallow_live = true\n', encoding="utf-8")
    called = _fake_engine(monkeypatch)
    assert cli.main(["run"]) == 2
    assert "--live" in one_line(capsys.readouterr().err)
    assert cli.main(["run", "--live"]) == 0
    assert called[0][0].profile == "live"


def _fake_engine(monkeypatch: pytest.MonkeyPatch, code: int = 0) -> list[tuple[Settings, float | None]]:
    """Stand-in for aegis.engine.run: records what the CLI hands over."""
    calls: list[tuple[Settings, float | None]] = []

    def run(settings: Settings, run_for_s: float | None = None, dry_run: bool = False, strategy: Any = None) -> int:
        calls.append((settings, run_for_s))
        return code

    import aegis.engine

    monkeypatch.setattr(aegis.engine, "run", run)
    return calls


def test_run_hands_merged_settings_to_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "custom.toml"
    config.write_text("[sim]\nspeed = 5.0\n[ops]\nport = 1234\n", encoding="utf-8")
    calls = _fake_engine(monkeypatch, code=7)
    argv = ["run", "--sim", "--config", str(config), "--symbols", "solusdt", "xrpusdt",
            "--ops-port", "0", "--sim-url", "http://127.0.0.1:8900", "--duration", "2.5"]
    assert cli.main(argv) == 7
    (settings, run_for), = calls
    assert settings.symbols == ["SOLUSDT", "XRPUSDT"]
    assert settings.ops.port == 0 and settings.sim.speed == 5.0
    assert settings.sim.url == "http://127.0.0.1:8900"
    assert run_for == 2.5


def test_run_registers_secrets_before_the_engine_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AEGIS_API_KEY", KEY)
    monkeypatch.setenv("AEGIS_API_SECRET", SECRET)

    def run(settings: Settings, run_for_s: float | None = None, dry_run: bool = False, strategy: Any = None) -> int:
        logger.error("engine saw {}", SECRET)
        return 0

    import aegis.engine

    monkeypatch.setattr(aegis.engine, "run", run)
    assert cli.main(["run"]) == 0
    err = capsys.readouterr().err
    assert "engine saw ***" in err and SECRET not in err


def test_run_rejects_a_negative_duration(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_engine(monkeypatch)
    assert cli.main(["run", "--duration", "-1"]) == 2
    assert "--duration" in one_line(capsys.readouterr().err)


def test_config_outputs_toml_and_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_API_SECRET", SECRET)
    assert cli.main(["config", "--ops-port", "0"]) == 0
    toml_out = capsys.readouterr().out
    assert "port = 0" in toml_out and SECRET not in toml_out
    assert cli.main(["config", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["api_secret"] == "**********" and data["api_key"] is None


def test_reconcile_needs_an_exchange_and_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reconcile", "--once"]) == 2  # the embedded simulator has no account to compare
    assert "--sim-url" in one_line(capsys.readouterr().err)
    assert cli.main(["reconcile"]) == 2  # --once is required
    assert "--once" in one_line(capsys.readouterr().err)


def _fake_sim_serve(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, str, int]]:
    calls: list[tuple[Any, str, int]] = []

    def serve(config: Any, host: str = "127.0.0.1", port: int = 8765) -> int:
        calls.append((config, host, port))
        return 0

    import aegis.sim.server

    monkeypatch.setattr(aegis.sim.server, "serve", serve)
    return calls


def test_sim_builds_the_simulator_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aegis.sim.config import DEMO_ACCOUNT, AccountSpec

    calls = _fake_sim_serve(monkeypatch)
    argv = ["sim", "--port", "8900", "--speed", "60", "--data", str(tmp_path), "--account", "k:s:500"]
    assert cli.main(argv) == 0
    (config, host, port), = calls
    assert (host, port) == ("127.0.0.1", 8900)
    assert config.speed == 60.0 and config.data_paths == (tmp_path,)
    assert config.accounts == (DEMO_ACCOUNT, AccountSpec.parse("k:s:500"))


def test_sim_rejects_a_bad_account(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_sim_serve(monkeypatch)
    assert cli.main(["sim", "--account", "only-a-key"]) == 2
    assert "--account" in one_line(capsys.readouterr().err)
    assert calls == []


def test_sim_rejects_a_public_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sim", "--host", "0.0.0.0"]) == 2
    assert "sim.host" in one_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- usage and help


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    one_line(capsys.readouterr().err)
    assert cli.main(["run", "--sim", "--live"]) == 2
    assert "not allowed with" in one_line(capsys.readouterr().err)
    assert cli.main(["bogus"]) == 2
    one_line(capsys.readouterr().err)


@pytest.mark.parametrize("command", [[], ["run"], ["reconcile"], ["sim"], ["config"]])
def test_help_is_useful(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: aegis")
    if command and command != ["reconcile"]:
        assert "examples:" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("aegis ")
