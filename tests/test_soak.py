"""The chaos soak's short variant (bench/soak.py --short): four simulated hours, a fixed seed.

Every chaos kind at least once, a SIGKILL and restart on the same journal, a 24-hour jump; then the
ledger against the exchange's own records (candles, audit, trades, account). Two real processes on
the wall clock: the waits inside are hang guards, nothing here measures time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import soak

pytestmark = pytest.mark.wallclock  # drives an engine and a simulator process


@pytest.mark.timeout(900)
def test_the_short_soak_passes_every_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = soak.main(["--short", "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if "[FAIL]" in line or line.startswith("         ")]
    assert code == 0, "\n".join(failed) or out[-4000:]
    assert "soak: PASS" in out
