"""The recorded real Binance payloads the adapter tests read (carried in tests/fixtures)."""

from __future__ import annotations

from typing import Any

from tests.fixtures import BINANCE as FIXTURES
from tests.fixtures import binance_names, binance_obj, binance_raw

__all__ = ["FIXTURES", "all_names", "obj", "raw"]


def raw(name: str) -> bytes:
    return binance_raw(name)


def obj(name: str) -> Any:
    return binance_obj(name)


def all_names() -> list[str]:
    return binance_names()
