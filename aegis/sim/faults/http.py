"""HTTP faults: answers the gateway gives instead of, or after, executing a request.

An aiohttp middleware, outermost, so a fault answers before authentication or weights, as
Binance's gateway does. The /_sim/ admin routes are never faulted; WebSocket handshakes meet
only a ``fail_requests`` fault that names their path (a refused reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from aegis.sim.audit import AUDIT_ROW
from aegis.sim.clock import SimClock
from aegis.sim.errors import BinanceError
from aegis.sim.faults.record import Fault

log = logging.getLogger("aegis.sim.faults")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNKNOWN_503_MSG = "Unknown error, please check your request or try again later."
TIMEOUT_1007_MSG = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
OVERLOADED_1008_MSG = "Server is currently overloaded with other requests. Please try again in a few minutes."
GROUPS = ("rate_limit", "fail", "unknown", "latency")


@dataclass(eq=False)
class HttpFault:
    """A fault applied to matching REST requests by the middleware."""

    fault: Fault
    path: str | None = None
    method: str | None = None
    count: int | None = None  # None = until it expires or is deleted
    until_ms: int | None = None

    def live(self, now_ms: int) -> bool:
        if self.fault.status != "active":
            return False
        if self.until_ms is not None and now_ms >= self.until_ms:
            self.fault.finish(now_ms)
            return False
        return self.count is None or self.count > 0

    def matches(self, request: web.Request) -> bool:
        return (self.path is None or request.path == self.path) and (
            self.method is None or request.method == self.method
        )

    def consume(self, now_ms: int) -> None:
        self.fault.hits += 1
        if self.count is not None:
            self.count -= 1
            if self.count <= 0:
                self.fault.finish(now_ms)


def _annotate(request: web.Request, fault: Fault, saw: dict[str, Any]) -> None:
    """Tell the request's audit row (if it has one) what the client got instead of the answer."""
    row = request.get(AUDIT_ROW)
    if row is not None:
        row["client_saw"] = {"fault": fault.id, **saw}


def binance_error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


class HttpFaults:
    """The live HTTP faults by group, and what the middleware does with a request."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.groups: dict[str, list[HttpFault]] = {g: [] for g in GROUPS}
        self.shutting_down = asyncio.Event()

    def add(self, group: str, hf: HttpFault) -> None:
        self.groups[group].append(hf)

    def refresh(self) -> None:
        """Drop (and mark done) the faults whose time or count is up."""
        now = self.clock.now_ms()
        for group in self.groups.values():
            group[:] = [hf for hf in group if hf.live(now)]

    def _first(self, group: str, request: web.Request, now_ms: int) -> HttpFault | None:
        faults = self.groups[group]
        if not faults:  # the usual case (a backtest without faults): every request asks four times
            return None
        faults[:] = [hf for hf in faults if hf.live(now_ms)]
        return next((hf for hf in faults if hf.matches(request)), None)

    async def handle_upgrade(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """WebSocket handshakes meet only a fail_requests fault that names their path (a refused
        reconnect); REST rate limits and latency do not apply to streams."""
        now = self.clock.now_ms()
        faults = self.groups["fail"]
        faults[:] = [hf for hf in faults if hf.live(now)]
        failing = next((hf for hf in faults if hf.path is not None and hf.matches(request)), None)
        if failing is None:
            return await handler(request)
        failing.consume(now)
        d = failing.fault.detail
        return binance_error(d["status"], d["code"], d["msg"])

    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        now = self.clock.now_ms()
        limited = self._first("rate_limit", request, now)
        if limited is not None:
            limited.consume(now)
            return self._rate_limited(limited, now)
        failing = self._first("fail", request, now)
        if failing is not None:
            failing.consume(now)
            d = failing.fault.detail
            return binance_error(d["status"], d["code"], d["msg"])
        unknown = self._first("unknown", request, now)
        if unknown is None:
            response = await handler(request)
        else:
            unknown.consume(now)
            response = await self._unknown(unknown.fault, request, handler)
        slow = self._first("latency", request, self.clock.now_ms())
        if slow is not None:
            slow.consume(now)
            await self.hold(slow.fault.detail["delay_s"])
        return response

    def _rate_limited(self, hf: HttpFault, now_ms: int) -> web.Response:
        until = hf.fault.detail["until_ms"]
        # Retry-After is what a client sleeps: wall seconds, like the simulator's own rate limiter.
        retry_after = str(max(1, math.ceil(self.clock.wall_seconds(until - now_ms))))
        ip = "127.0.0.1"
        if hf.fault.detail["status"] == 418:
            msg = f"Way too many requests; IP({ip}) banned until {until}. Please use the websocket for live updates to avoid bans."
        else:
            msg = (
                f"Too many requests; current limit of IP({ip}) is 2400 requests per minute. "
                "Please use the websocket for live updates to avoid polling the API."
            )
        return binance_error(hf.fault.detail["status"], -1003, msg, {"Retry-After": retry_after})

    async def _unknown(self, fault: Fault, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Execute the request; the caller must not learn how it went."""
        mode = fault.detail["mode"]
        if mode == "timeout":
            try:
                return await handler(request)
            finally:
                _annotate(request, fault, {"timeout_s": fault.detail["hold_s"]})
                await self.hold(fault.detail["hold_s"])
        try:
            await handler(request)
        except (BinanceError, web.HTTPException) as exc:
            log.info("fault #%d hid the outcome of %s %s: %r", fault.id, request.method, request.path, exc)
        if mode == "503":
            answer = binance_error(fault.detail["status"], -1000, UNKNOWN_503_MSG)
            _annotate(request, fault, {"http_status": fault.detail["status"], "code": -1000})
        else:
            answer = binance_error(fault.detail["status"], -1007, TIMEOUT_1007_MSG)
            _annotate(request, fault, {"http_status": fault.detail["status"], "code": -1007})
        return answer

    async def hold(self, seconds: float) -> None:
        """A delay on the event loop's clock that ends early when the server shuts down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.shutting_down.wait(), timeout=seconds)
