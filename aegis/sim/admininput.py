"""Input of the admin API (/_sim/faults, /_sim/clock, /_sim/trade): typed, bounded, or a clear 400.

The admin API is reached over HTTP like the exchange itself, so a test, a script or a soak can
send anything; a bad value is answered with ``{"error": ...}`` and HTTP 400, never a hang or a
simulator stuck in a state nobody asked for.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


class AdminInputError(ValueError):
    """An admin request the simulator cannot honour; answered with HTTP 400."""


def integer(params: dict[str, Any], name: str, default: int | None = None, minimum: int | None = None) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdminInputError(f"{name} must be an integer")
    if minimum is not None and value < minimum:
        raise AdminInputError(f"{name} must be >= {minimum}")
    return value


def number(params: dict[str, Any], name: str, default: float | None = None) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise AdminInputError(f"{name} must be a non-negative number")
    return float(value)


def choice(params: dict[str, Any], name: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = params.get(name, default)
    if value not in choices:
        raise AdminInputError(f"{name} must be one of {', '.join(choices)}")
    return str(value)


def optional_string(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise AdminInputError(f"{name} must be a string")
    return value


def symbols(params: dict[str, Any]) -> set[str] | None:
    value = params.get("symbols")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise AdminInputError("symbols must be a list of strings")
    return {s.upper() for s in value}


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or HTTP 400."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return body
