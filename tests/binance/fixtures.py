"""Access to the recorded real Binance payloads under /work/shared/fixtures/binance."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

FIXTURES = pathlib.Path(os.environ.get("AEGIS_BINANCE_FIXTURES", "/work/shared/fixtures/binance"))


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def obj(name: str) -> Any:
    return json.loads(raw(name))


def all_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.glob("*.json"))
