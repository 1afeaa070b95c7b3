"""Exchange errors, classified once, here, from the HTTP status and Binance's code.

Everything above the adapter speaks these classes: whether to retry, back off, query
before retrying, re-authenticate or wait is decided by the class, never by parsing a
message again. No ccxt or aiohttp exception type leaves ``aegis.binance``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from aegis.redact import redact

__all__ = [
    "AuthError",
    "ClockSkew",
    "ExchangeError",
    "ListenKeyNotFound",
    "OrderNotFound",
    "OutcomeUnknown",
    "ParseError",
    "RateLimited",
    "Rejected",
    "Retryable",
    "classify",
    "classify_transport",
]


class ExchangeError(Exception):
    """Base of every error the adapter raises; carries what the exchange said."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        endpoint: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.endpoint = endpoint

    def __str__(self) -> str:
        parts = [self.__class__.__name__]
        if self.endpoint:
            parts.append(self.endpoint)
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        return f"{' '.join(parts)}: {self.message}"


class Rejected(ExchangeError):
    """The exchange refused the request and nothing changed: never retry it unchanged."""


class OrderNotFound(Rejected):
    """-2011 / -2013: the order is unknown (never placed, or already closed and forgotten)."""


class ListenKeyNotFound(Rejected):
    """-1125: the listenKey expired or never existed; create a new one."""


class AuthError(ExchangeError):
    """Bad key, signature or permissions: retrying cannot help, an operator must."""


class Retryable(ExchangeError):
    """A definite failure on the way or on the exchange's side: retry with backoff."""


class OutcomeUnknown(ExchangeError):
    """The request may or may not have taken effect: query the order before any retry."""


class RateLimited(ExchangeError):
    """429 / 418 (or -1003 / -1015): all REST waits until ``until_ms`` (server time) if known."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        endpoint: str = "",
        until_ms: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status, endpoint=endpoint)
        self.until_ms = until_ms
        self.retry_after_s = retry_after_s


class ClockSkew(ExchangeError):
    """-1021 / -5028: the request's timestamp was outside the window; resync, re-sign, resend."""


class ParseError(ExchangeError):
    """A payload that does not have the shape we rely on; ``raw`` keeps it for the log."""

    def __init__(self, message: str, raw: Any = None) -> None:
        super().__init__(message)
        self.raw = raw


class _ErrorBody(msgspec.Struct):
    code: int | str | None = None
    msg: str = ""


_ERROR_BODY = msgspec.json.Decoder(_ErrorBody)

CLOCK_CODES = frozenset({-1021, -5028})
AUTH_CODES = frozenset({-1002, -1022, -2014, -2015})
NOT_FOUND_CODES = frozenset({-2011, -2013})
UNKNOWN_OUTCOME_CODES = frozenset({-1006, -1007})
RETRYABLE_CODES = frozenset({-1000, -1001, -1008, -1016})
RATE_CODES = frozenset({-1003, -1015})
LISTEN_KEY_CODES = frozenset({-1125})

_BANNED_UNTIL = re.compile(r"banned until (\d{10,})")
_SERVICE_UNAVAILABLE = "service unavailable"


def _decode_body(body: bytes | str) -> tuple[int | None, str]:
    """Binance's ``{"code", "msg"}``; a non-JSON body (a proxy page) yields no code."""
    try:
        err = _ERROR_BODY.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return None, text.strip()[:300]
    code: int | None
    try:
        code = int(err.code) if err.code is not None else None
    except ValueError:
        code = None
    return code, err.msg


def _header(headers: Mapping[str, str], name: str) -> str | None:
    name = name.lower()
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = _header(headers, "Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def classify(
    status: int,
    body: bytes | str,
    headers: Mapping[str, str],
    *,
    method: str,
    endpoint: str = "",
) -> ExchangeError:
    """Map an HTTP error response to exactly one class (binance-usdm-facts section 4).

    ``method`` matters because "outcome unknown" only means something for a request that
    changes state; an unknown outcome of a GET is just a failed read, so it is Retryable.
    """
    code, msg = _decode_body(body)
    mutating = method.upper() != "GET"
    kw: dict[str, Any] = {"code": code, "http_status": status, "endpoint": endpoint}
    if status in (418, 429) or code in RATE_CODES:
        match = _BANNED_UNTIL.search(msg)
        return RateLimited(
            msg or f"HTTP {status}",
            until_ms=int(match.group(1)) if match else None,
            retry_after_s=_retry_after(headers),
            **kw,
        )
    if code in CLOCK_CODES:
        return ClockSkew(msg, **kw)
    if code in AUTH_CODES or status == 401:
        return AuthError(msg or f"HTTP {status}", **kw)
    if code in UNKNOWN_OUTCOME_CODES or (status == 503 and msg.lower().startswith("unknown error")):
        return (OutcomeUnknown if mutating else Retryable)(msg, **kw)
    if code in RETRYABLE_CODES or (status == 503 and _SERVICE_UNAVAILABLE in msg.lower()):
        return Retryable(msg or f"HTTP {status}", **kw)
    if status >= 500 or status == 408:
        # Binance: a 5xx is not a failure; the execution status is unknown.
        return (OutcomeUnknown if mutating else Retryable)(msg or f"HTTP {status}", **kw)
    if code in NOT_FOUND_CODES:
        return OrderNotFound(msg, **kw)
    if code in LISTEN_KEY_CODES:
        return ListenKeyNotFound(msg, **kw)
    return Rejected(msg or f"HTTP {status}", **kw)


def classify_transport(exc: BaseException, *, sent: bool, method: str, endpoint: str = "") -> ExchangeError:
    """A failure without an HTTP response: before sending it is retryable, after it unknown."""
    text = redact(f"{type(exc).__name__}: {exc}".strip())
    if sent and method.upper() != "GET":
        return OutcomeUnknown(f"no response after sending ({text})", endpoint=endpoint)
    return Retryable(f"transport failure ({text})", endpoint=endpoint)
