"""Input of the admin API (/_sim/faults, /_sim/clock, /_sim/trade): typed, bounded, or a clear 400.

The admin API is reached over HTTP like the exchange itself, so a test, a script or a soak can
send anything; a bad value is answered with ``{"error": ...}`` and HTTP 400, never a hang or a
simulator stuck in a state nobody asked for.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

DAY_MS = 24 * 3600 * 1000
MAX_SPAN_MS = 366 * DAY_MS
"""The longest exchange-time span one admin request may ask for (a jump, a fault's duration):
a forward jump walks every active symbol minute by minute, so 1e300 ms would never return."""
EARLIEST_CLOCK_MS = 1_483_228_800_000  # 2017-01-01: before any USD-M futures candle
LATEST_CLOCK_MS = 4_102_444_800_000  # 2100-01-01: Binance's own perpetual deliveryDate horizon
MAX_COUNT = 1_000_000
MAX_HOLD_S = 3600.0
METHODS = ("GET", "POST", "PUT", "DELETE")


class AdminInputError(ValueError):
    """An admin request the simulator cannot honour; answered with HTTP 400."""


def integer(
    params: dict[str, Any],
    name: str,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """A JSON integer (not a float, not a bool) within [minimum, maximum]."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdminInputError(f"{name} must be an integer")
    if minimum is not None and value < minimum:
        raise AdminInputError(f"{name} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise AdminInputError(f"{name} must be <= {maximum}")
    return value


def number(
    params: dict[str, Any],
    name: str,
    default: float | None = None,
    maximum: float | None = None,
    *,
    positive: bool = False,
) -> float:
    """A finite JSON number >= 0 (> 0 when ``positive``), at most ``maximum``."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AdminInputError(f"{name} must be a finite number")
    if value < 0 or (positive and value == 0):
        raise AdminInputError(f"{name} must be {'>' if positive else '>='} 0")
    if maximum is not None and value > maximum:
        raise AdminInputError(f"{name} must be <= {maximum:g}")
    return float(value)


def seconds(params: dict[str, Any], name: str, default: float | None = None) -> float:
    """A duration in exchange seconds, at most MAX_SPAN_MS."""
    return number(params, name, default, MAX_SPAN_MS / 1000)


def count(params: dict[str, Any], name: str, default: int | None = None, minimum: int = 1) -> int:
    return integer(params, name, default, minimum, MAX_COUNT)


def jump_ms(params: dict[str, Any], name: str, now_ms: int) -> int:
    """A clock jump: an integer within ±366 days that keeps the clock in [2017, 2100)."""
    ms = integer(params, name, minimum=-MAX_SPAN_MS, maximum=MAX_SPAN_MS)
    if not EARLIEST_CLOCK_MS <= now_ms + ms < LATEST_CLOCK_MS:
        raise AdminInputError(f"{name} would move the clock outside 2017..2100")
    return ms


def at_ms(params: dict[str, Any], now_ms: int) -> int:
    """When a scheduled admin action takes effect: an exchange time from now to 366 days ahead
    (a time already past takes effect at once)."""
    at = integer(params, "at_ms", minimum=EARLIEST_CLOCK_MS, maximum=now_ms + MAX_SPAN_MS)
    return max(at, now_ms)


def only(params: dict[str, Any], allowed: frozenset[str], what: str) -> None:
    """Reject parameters a request does not know (a typo must not silently mean the default)."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise AdminInputError(f"unknown parameter(s) for {what}: {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")


def choice(params: dict[str, Any], name: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = params.get(name, default)
    if value not in choices:
        raise AdminInputError(f"{name} must be one of {', '.join(choices)}")
    return str(value)


def optional_string(params: dict[str, Any], name: str, max_len: int = 1000) -> str | None:
    value = params.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > max_len):
        raise AdminInputError(f"{name} must be a string of at most {max_len} characters")
    return value


def path(params: dict[str, Any]) -> str | None:
    value = optional_string(params, "path")
    if value is not None and not value.startswith("/"):
        raise AdminInputError("path must start with '/' (e.g. /fapi/v1/order)")
    return value


def method(params: dict[str, Any]) -> str | None:
    value = optional_string(params, "method")
    if value is None:
        return None
    if value.upper() not in METHODS:
        raise AdminInputError(f"method must be one of {', '.join(METHODS)}")
    return value.upper()


def http_status(params: dict[str, Any], default: int) -> int:
    return integer(params, "status", default, 100, 599)


def symbols(params: dict[str, Any]) -> set[str] | None:
    value = params.get("symbols")
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 1024 or not all(isinstance(s, str) for s in value):
        raise AdminInputError("symbols must be a list of at most 1024 strings")
    return {s.upper() for s in value}


def event_types(params: dict[str, Any]) -> frozenset[str] | None:
    """``events``: user-stream event types (``e``), e.g. ["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"]."""
    value = params.get("events")
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > 32 or not all(isinstance(e, str) for e in value):
        raise AdminInputError("events must be a non-empty list of at most 32 event types")
    return frozenset(e.upper() for e in value)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or HTTP 400."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return body
