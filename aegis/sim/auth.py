"""SIGNED endpoint checks: API key, timestamp/recvWindow, HMAC-SHA256 signature (facts section 2)."""

from __future__ import annotations

import hashlib
import hmac
import time

from aegis.sim import errors
from aegis.sim.params import integer

MAX_RECV_WINDOW = 60_000


def split_signature(raw: str) -> tuple[str, str | None]:
    """``raw`` without its ``signature=`` parameter, and the signature if present."""
    if "signature=" not in raw:
        return raw, None
    keep: list[str] = []
    sig: str | None = None
    for part in raw.split("&"):
        if part.startswith("signature="):
            sig = part[len("signature=") :]
        else:
            keep.append(part)
    return "&".join(keep), sig


def verify_signature(secret: bytes, query: str, body: str) -> None:
    """Signature = hex HMAC-SHA256 of query string + body exactly as received (no '&' between)."""
    q, sig_q = split_signature(query)
    b, sig_b = split_signature(body)
    sig = sig_q if sig_q is not None else sig_b
    if not sig:
        raise errors.mandatory("signature")
    expected = hmac.new(secret, (q + b).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig.lower()):
        raise errors.bad_signature()


def check_timestamp(params: dict[str, str], server_ms: int, reference: str) -> None:
    """Binance's rule: timestamp < serverTime + 1000 and serverTime - timestamp <= recvWindow."""
    ts = integer(params, "timestamp")
    if ts is None:
        raise errors.mandatory("timestamp")
    window = integer(params, "recvWindow")
    if window is None:
        window = 5000
    elif not 0 < window <= MAX_RECV_WINDOW:
        # Futures prose names no maximum; the OpenAPI schema says 60000 (UNCONFIRMED): the strict one.
        raise errors.invalid_param("recvWindow")
    if reference == "sim":  # (the backtest's: no wall clock read per request)
        refs: tuple[int, ...] = (server_ms,)
    elif reference == "wall":
        refs = (int(time.time() * 1000),)
    else:
        refs = (server_ms, int(time.time() * 1000))
    for now in refs:
        if now - window <= ts < now + 1000:
            return
    # Both clocks refused it: explain against the one the client is closer to.
    now = min(refs, key=lambda r: abs(r - ts))
    raise errors.ahead_of_server() if ts >= now + 1000 else errors.outside_recv_window()
