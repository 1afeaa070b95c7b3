"""``aegis reconcile --once`` for cron and monitoring: 0 clean, 1 mismatches (in the report),
2 when it cannot ask (a wrong key, no exchange); with an engine running it prints that engine's
pass instead of competing with it."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from aegis.config import Settings
from aegis.exitcodes import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE
from aegis.reconcile.once import reconcile_once
from aegis.sim.admin import SimAdmin
from tests.harness import DEMO_API_KEY, running_sim
from tests.rigs import engine_rig


def _settings(url: str, journal: Path | None = None, **extra: Any) -> Settings:
    path = journal or Path(tempfile.mkdtemp(prefix="aegis-once-")) / "journal.sqlite"
    return Settings(profile="sim", symbols=["BTCUSDT"], sim={"url": url}, journal={"path": str(path)}, **extra)


async def _once(settings: Settings) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    code = await reconcile_once(settings, as_json=True, out=out)
    return code, json.loads(out.getvalue()) if out.getvalue() else {}


async def test_a_clean_account_is_0_and_an_out_of_band_trade_is_1_with_the_mismatch() -> None:
    async with running_sim() as server:
        settings = _settings(server.rest_url)
        code, report = await _once(settings)
        assert code == EXIT_OK and report["clean"] and report["source"] == "an empty view (no journal)"
        async with SimAdmin(server.rest_url) as admin:
            await admin.trade(DEMO_API_KEY, "BTCUSDT", "BUY", "0.010")
        code, report = await _once(settings)
        assert code == EXIT_MISMATCH and not report["clean"]
        (finding,) = report["findings"]
        assert finding["kind"] == "position" and finding["key"] == "BTCUSDT BOTH" and finding["engine"] is None
        assert finding["exchange"].startswith("0.010 @ ")


async def test_a_wrong_key_or_no_exchange_is_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    async with running_sim() as server:
        wrong = _settings(server.rest_url, api_key="not-a-key-of-this-exchange", api_secret="whatever-secret")
        assert await _once(wrong) == (EXIT_USAGE, {})
    assert "cannot reach the exchange" in capsys.readouterr().err
    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        assert await _once(_settings(f"http://127.0.0.1:{closed.getsockname()[1]}")) == (EXIT_USAGE, {})
    err = capsys.readouterr().err.strip()
    assert "cannot reach the exchange" in err and len(err.splitlines()) == 1


async def test_with_an_engine_running_on_the_journal_it_prints_that_engines_pass() -> None:
    async with engine_rig() as rig:
        assert rig.engine.journal is not None
        settings = _settings(rig.sim.rest_url, rig.engine.journal.path)
        code, report = await _once(settings)
        assert code == EXIT_OK and report["clean"]
        assert report["source"] == f"the running engine (pid {os.getpid()}, {rig.ops_url})"
        assert report["reason"] == "ops: POST /reconcile"


@pytest.mark.wallclock
async def test_the_command_prints_a_table_and_exits_by_the_result(tmp_path: Path) -> None:
    async with running_sim() as server:
        env = {**os.environ, "AEGIS_JOURNAL__PATH": str(tmp_path / "journal.sqlite")}
        argv = [sys.executable, "-m", "aegis", "reconcile", "--once", "--sim-url", server.rest_url, "--symbols", "BTCUSDT"]
        proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)  # a hang guard, not a measure
        assert proc.returncode == EXIT_OK, err.decode()
        assert out.decode().startswith("reconcile against an empty view (no journal): clean")
