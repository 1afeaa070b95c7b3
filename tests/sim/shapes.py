"""Comparing the simulator's payloads with Binance's recorded ones by shape, not by value."""

from __future__ import annotations

from typing import Any


def shape(value: Any) -> Any:
    """Keys (in order) and JSON value types, recursively; lists are described by their first item."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return type(value).__name__
