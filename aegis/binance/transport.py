"""REST transport: ccxt signs and pools connections; we own time, costs, headers and errors.

ccxt's async ``binanceusdm`` is used for its raw endpoints only: ``sign()`` (HMAC, key
header, parameter placement) and its aiohttp session. Four things are overridden because
ccxt's defaults are wrong for an engine:

* every URL is the configured profile's, and only the futures prefixes exist, so no call can
  reach spot/sapi (ccxt's ``load_markets``/``fetch_currencies`` are never called);
* ``nonce()`` is the adapter's server clock (engine Clock + measured offset), not the host clock;
* ``fetch()`` returns status, headers and body of *this* request instead of storing headers
  on the shared instance (``last_response_headers`` is racy under concurrency), and raises
  nothing on HTTP errors: classification happens once, in ``errors.classify``;
* the ccxt throttler is off: the ``RateGovernor`` is the one budget.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import yarl
from loguru import logger

from aegis.binance.clock import ServerClock
from aegis.binance.endpoints import API_PREFIXES, Endpoint
from aegis.binance.errors import (
    AuthError,
    ClockSkew,
    ExchangeError,
    RateLimited,
    Rejected,
    Retryable,
    classify,
    classify_transport,
)
from aegis.binance.ratelimit import Cost, Priority, RateGovernor

__all__ = ["HttpResponse", "RestTransport"]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _TransportFailure(Exception):
    """Carries an aiohttp failure out of ccxt's fetch2 with whether the request was sent."""

    def __init__(self, cause: BaseException, sent: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.sent = sent


class _UsdmExchange(ccxt_async.binanceusdm):  # type: ignore[misc]
    """ccxt binanceusdm reduced to signing and pooling, with our clock and per-request headers."""

    def __init__(self, config: dict[str, Any], now_ms: Callable[[], int], timeout: aiohttp.ClientTimeout):
        super().__init__(config)
        self._aegis_now_ms = now_ms
        self._aegis_timeout = timeout

    def nonce(self) -> int:
        return self._aegis_now_ms()

    async def fetch(
        self,
        url: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> HttpResponse:
        request_headers = self.prepare_request_headers(headers)
        self.open(True)  # lazy: raises ExchangeClosedByUser after close() instead of leaking a session
        try:
            async with self.session.request(
                method,
                yarl.URL(url, encoded=True),
                data=body.encode() if body else None,
                headers=request_headers,
                timeout=self._aegis_timeout,
            ) as response:
                payload = await response.read()
                return HttpResponse(
                    response.status, {k.lower(): v for k, v in response.headers.items()}, payload
                )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise _TransportFailure(exc, sent=False) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            # After the connection was made we cannot know whether the exchange acted on it.
            raise _TransportFailure(exc, sent=True) from exc


def _futures_urls(rest_url: str) -> dict[str, str]:
    base = rest_url.rstrip("/")
    return {api: base + prefix for api, prefix in API_PREFIXES.items()}


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
        timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        config = {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": False,
            "timeout": int(timeout_s * 1000),
            "options": {
                "fetchCurrencies": False,
                "fetchMargins": False,
                "adjustForTimeDifference": False,
                "recvWindow": recv_window_ms,
                "defaultType": "swap",
            },
        }
        self._exchange = _UsdmExchange(config, server_clock.now_ms, timeout)
        # Replace, not update: an api section we did not configure must fail, not go to binance.com.
        self._exchange.urls["api"] = _futures_urls(rest_url)
        if not rest_url.startswith("https://"):
            # ccxt waits 250 ms on close so TLS connections can shut down; plain HTTP (the
            # loopback simulator) has nothing to wait for.
            self._exchange.timeout_on_exit = 0
        self.clock_retries = 0
        self.rate_limited: Counter[int] = Counter()  # 429s and 418s received, by HTTP status
        self.on_send: Callable[[Endpoint, Cost], None] | None = None
        """Told just before a request is written (metrics: tick-to-trade latency)."""
        self.on_auth_error: Callable[[AuthError], None] | None = None
        """Told of every refused key (the engine stops: retrying cannot fix it)."""

    async def close(self) -> None:
        await self._exchange.close()

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
            if self.on_send is not None:
                self.on_send(endpoint, cost)
            sent = time.perf_counter()
            try:
                response = await self._send(endpoint, params)
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

    async def _send(self, endpoint: Endpoint, params: dict[str, Any]) -> HttpResponse:
        try:
            response = await self._exchange.request(endpoint.path, [endpoint.api], endpoint.method, params)
        except _TransportFailure as exc:
            raise classify_transport(
                exc.cause, sent=exc.sent, method=endpoint.method, endpoint=endpoint.label
            ) from None
        except ccxt_async.AuthenticationError as exc:
            raise AuthError(str(exc), endpoint=endpoint.label) from None
        except ccxt_async.ExchangeClosedByUser as exc:
            raise Retryable(f"transport closed: {exc}", endpoint=endpoint.label) from None
        except ccxt_async.BaseError as exc:
            raise Rejected(f"ccxt: {exc}", endpoint=endpoint.label) from None
        except asyncio.CancelledError:
            raise
        if not isinstance(response, HttpResponse):  # pragma: no cover - ccxt contract guard
            raise ExchangeError(
                f"unexpected transport result {type(response).__name__}", endpoint=endpoint.label
            )
        return response
