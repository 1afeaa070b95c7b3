"""Run every benchmark module in bench/ (``make bench``), one after another, each in its own process."""

from __future__ import annotations

import pathlib
import subprocess
import sys


def main() -> int:
    here = pathlib.Path(__file__).parent
    failures = 0
    for path in sorted(here.glob("bench_*.py")):
        print(f"\n=== {path.stem} ===", flush=True)
        result = subprocess.run([sys.executable, "-m", f"bench.{path.stem}"], cwd=here.parent, check=False)
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
