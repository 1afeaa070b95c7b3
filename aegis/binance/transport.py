"""REST transport: we sign, send and classify; ``http1.HttpClient`` carries the bytes.

Binance's rules, as ccxt's ``binanceusdm.sign()`` applied them before (tests/binance checks
the wire): every URL is the configured profile's and only the futures prefixes exist, so no call
can reach spot/sapi; a TRADE / USER_DATA call carries ``timestamp`` (the adapter's server clock,
not the host's), ``recvWindow`` and the hex HMAC-SHA256 ``signature`` of the query it is appended
to, in the URL for GET/DELETE and in a form body otherwise; listenKey calls carry only the key
header. Status, headers and body come back per request; nothing raises on an HTTP error:
classification happens once, in ``errors.classify``; the ``RateGovernor`` is the one budget.

ccxt did this until its request machinery (sign, extend, safe_*, aiohttp) proved to be most of
an order's CPU (bench/bench_tick_to_trade.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote_plus

from loguru import logger

from aegis.binance.clock import ServerClock
from aegis.binance.endpoints import API_PREFIXES, Endpoint
from aegis.binance.errors import (
    AuthError,
    ClockSkew,
    RateLimited,
    Rejected,
    classify,
    classify_transport,
)
from aegis.binance.http1 import HttpClient, HttpFailure, HttpResponse
from aegis.binance.ratelimit import Cost, Priority, RateGovernor

__all__ = ["HttpResponse", "RestTransport"]

_FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*\Z")  # what form-encoding leaves as it is


def _wire(params: Mapping[str, Any]) -> str:
    """Form-encode as ``urlencode`` does (booleans as Binance's ``true``/``false``), ~5x faster:
    our values (symbols, plain decimals, ids, client ids) almost never need quoting."""
    parts = []
    for key, value in params.items():
        text = ("true" if value else "false") if value is True or value is False else str(value)
        parts.append(f"{key}={text}" if _PLAIN.match(text) else f"{key}={quote_plus(text)}")
    return "&".join(parts)


class RestTransport:
    """Sends one endpoint call: governor admission, signing, -1021 recovery, classification."""

    def __init__(
        self,
        rest_url: str,
        api_key: str,
        secret: str,
        server_clock: ServerClock,
        governor: RateGovernor,
        *,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        recv_window_ms: int = 5000,
    ) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.server_clock = server_clock
        self.governor = governor
        self.recv_window_ms = recv_window_ms
        self.http = HttpClient(self.rest_url, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s)
        self._key = api_key
        self._key_header = f"X-MBX-APIKEY: {api_key}\r\n".encode()
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256) if secret else None
        self.clock_retries = 0
        self.rate_limited: Counter[int] = Counter()  # 429s and 418s received, by HTTP status
        self.on_send: Callable[[Endpoint, Cost], None] | None = None
        """Told as soon as a request's bytes are written to the socket (metrics: tick-to-trade)."""
        self.on_auth_error: Callable[[AuthError], None] | None = None
        """Told of every refused key (the engine stops: retrying cannot fix it)."""

    async def close(self) -> None:
        await self.http.close()

    async def call(
        self,
        endpoint: Endpoint,
        params: Mapping[str, Any] | None = None,
        *,
        priority: Priority | None = None,
    ) -> bytes:
        """Send ``endpoint`` and return the 2xx body; anything else raises an ExchangeError."""
        params = dict(params or {})
        prio = endpoint.priority if priority is None else priority
        cost = endpoint.cost(params)
        for attempt in range(2):
            if endpoint.signed:
                await self.server_clock.ensure_synced()
            permit = await self.governor.acquire(cost, prio)
            sent = time.perf_counter()
            try:
                response = await self._send(endpoint, params, cost)
            except AuthError as exc:
                if self.on_auth_error is not None:
                    self.on_auth_error(exc)
                raise
            self.governor.observe(permit, response.headers)
            logger.debug(
                "{} -> {} in {:.1f} ms", endpoint.label, response.status, (time.perf_counter() - sent) * 1000
            )
            if 200 <= response.status < 300:
                return response.body
            error = classify(
                response.status,
                response.body,
                response.headers,
                method=endpoint.method,
                endpoint=endpoint.label,
            )
            if isinstance(error, AuthError) and self.on_auth_error is not None:
                self.on_auth_error(error)
            if isinstance(error, RateLimited):
                self._cool_down(error)
            elif isinstance(error, ClockSkew) and attempt == 0:
                # Rejected before execution, so re-signing with a fresh offset and resending is safe.
                logger.warning(
                    "{}: {}; resyncing the server clock and resending once", endpoint.label, error.message
                )
                self.clock_retries += 1
                await self.server_clock.sync()
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    def _cool_down(self, error: RateLimited) -> None:
        """-1015 fills the account's order windows; any other limit stops all REST of this IP."""
        reason = f"HTTP {error.http_status} {error.message}"
        self.rate_limited[error.http_status or 0] += 1
        if error.code == -1015:
            self.governor.saturate_orders(minute="MINUTE" in error.message.upper())
        elif error.until_ms is not None:  # "banned until <ms>": exchange time
            self.governor.pause_for((error.until_ms - self.server_clock.now_ms()) / 1000, reason)
        elif error.retry_after_s is not None:  # HTTP Retry-After: wall seconds
            engine_per_wall = 1.0 / max(self.server_clock.wall_seconds(1.0), 1e-9)
            self.governor.pause_for(error.retry_after_s * engine_per_wall, reason)
        else:
            self.governor.pause_until_window_end(reason)

    async def _send(self, endpoint: Endpoint, params: dict[str, Any], cost: Cost) -> HttpResponse:
        method, target, headers, body = self._request(endpoint, params)
        hook = self.on_send
        written = None if hook is None else (lambda: hook(endpoint, cost))
        try:
            return await self.http.request(method, target, headers, body, on_written=written)
        except HttpFailure as exc:
            raise classify_transport(exc, sent=exc.sent, method=method, endpoint=endpoint.label) from None

    def _request(self, endpoint: Endpoint, params: dict[str, Any]) -> tuple[str, str, bytes, bytes | None]:
        """Method, target, header lines and body of ``endpoint`` called with ``params``."""
        method = endpoint.method
        prefix = API_PREFIXES.get(endpoint.api)
        if prefix is None:  # a spot/sapi section is simply not configured: nothing is sent
            raise Rejected(f"no {endpoint.api!r} API in this profile", endpoint=endpoint.label)
        target = f"{prefix}/{endpoint.path}"
        if not endpoint.api.startswith("fapiPrivate"):
            query = _wire(params)
            return method, f"{target}?{query}" if query else target, b"", None
        if not self._key or self._mac is None:
            raise AuthError("an API key and secret are required", endpoint=endpoint.label)
        headers = self._key_header
        if endpoint.signed:
            query = _wire({"timestamp": self.server_clock.now_ms(), **params, "recvWindow": self.recv_window_ms})
            mac = self._mac.copy()
            mac.update(query.encode())
            query = f"{query}&signature={mac.hexdigest()}"
        else:  # listenKey: the key header only
            query = _wire(params)
        if method in ("GET", "DELETE"):
            return method, f"{target}?{query}" if query else target, headers, None
        return method, target, headers + _FORM, query.encode()
