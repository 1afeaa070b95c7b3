"""One server-side WebSocket connection, run the way Binance runs its stream connections.

Shared by the market streams and the user data stream. A connection owns a bounded outbox
drained by its own writer task, so a slow reader never stalls the fan-out to others (it is
dropped instead, as Binance drops consumers that fall behind). A keeper task sends pings every
3 minutes of simulator time, drops clients that stop answering them, and cuts the connection
after 24 hours of simulator time. Incoming frames are rate limited (10 per second).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web

from aegis.sim.clock import HOUR_MS, MINUTE_MS, SimClock

log = logging.getLogger("aegis.sim.ws")

TextHandler = Callable[["WsConn", str], Awaitable[None]]

_ids = itertools.count(1)


@dataclass(frozen=True)
class WsLimits:
    """Binance's per-connection rules, with wall-time floors so a fast clock stays sane."""

    queue_max: int = 10_000
    ping_interval_ms: int = 3 * MINUTE_MS
    # Never more than a few pings per wall second, whatever the clock speed.
    ping_min_wall_s: float = 0.5
    pong_timeout_ms: int = 10 * MINUTE_MS
    # A healthy client needs some wall time to answer; at 3600x 10 sim minutes is 0.17 s.
    pong_timeout_floor_s: float = 2.0
    lifetime_ms: int = 24 * HOUR_MS
    # Counted on the wall clock: it protects the process and clients send at wall pace.
    max_incoming_per_s: int = 10


def limits_from(extra: dict[str, str]) -> WsLimits:
    """WsLimits with overrides from ``SimConfig.extra`` (``ws_queue_max``, ``ws_ping_interval_ms``,
    ``ws_ping_min_wall_s``, ``ws_pong_timeout_floor_s``), e.g. a looser pong floor on a heavily
    loaded CI machine, or rarer pings in a backtest without faults."""
    base = WsLimits()
    return WsLimits(
        queue_max=int(extra.get("ws_queue_max", base.queue_max)),
        ping_interval_ms=int(extra.get("ws_ping_interval_ms", base.ping_interval_ms)),
        ping_min_wall_s=float(extra.get("ws_ping_min_wall_s", base.ping_min_wall_s)),
        pong_timeout_floor_s=float(extra.get("ws_pong_timeout_floor_s", base.pong_timeout_floor_s)),
    )


class _Close:
    """Outbox marker: close gracefully once everything queued before it is sent."""

    def __init__(self, code: int, message: bytes) -> None:
        self.code = code
        self.message = message


class WsConn:
    """A prepared ``WebSocketResponse`` plus its outbox, writer and keeper."""

    def __init__(
        self, ws: web.WebSocketResponse, request: web.Request, clock: SimClock, limits: WsLimits, kind: str
    ) -> None:
        self.id = next(_ids)
        self.kind = kind
        self.ws = ws
        self.clock = clock
        self.limits = limits
        self.opened_ms = clock.now_ms()
        self._transport = request.transport
        self._outbox: deque[bytes | _Close] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._unanswered: tuple[int, float] | None = None  # (sim ms, wall s) of the oldest unanswered ping
        self._ping_payloads: set[bytes] = set()  # payloads of the pings sent since then
        self._incoming: deque[float] = deque()
        self.dropped_reason: str | None = None
        # A frozen connection looks half-open: nothing goes out (no data, pings or pongs).
        self.frozen = False
        log.debug("ws %s #%d open: %s", kind, self.id, request.path_qs)

    @property
    def queued(self) -> int:
        return len(self._outbox)

    @property
    def closed(self) -> bool:
        return self._closing or self.ws.closed

    def send(self, data: bytes) -> None:
        """Queue one text frame; a consumer too slow to keep up is disconnected."""
        if self._closing:
            return
        if len(self._outbox) >= self.limits.queue_max:
            self.abort("outbox overflow")
            return
        self._outbox.append(data)
        self._wakeup.set()

    def close_after_flush(self, code: int = WSCloseCode.OK, message: bytes = b"") -> None:
        """Send what is queued, then a close frame (listenKeyExpired, the 24-hour cut)."""
        if self._closing:
            return
        self._outbox.append(_Close(code, message))
        self._closing = True
        self._wakeup.set()

    def freeze(self) -> None:
        """Fault injection: stay connected but go silent, as a half-open TCP connection does."""
        self.frozen = True
        log.info("ws %s #%d frozen", self.kind, self.id)

    def abort(self, reason: str) -> None:
        """Drop the TCP connection without a close frame, as a network failure would."""
        if self.dropped_reason is None:
            self.dropped_reason = reason
            log.info("ws %s #%d dropped: %s", self.kind, self.id, reason)
        self._closing = True
        self._outbox.clear()
        self._wakeup.set()
        if self._transport is not None:
            self._transport.abort()

    async def run(self, on_text: TextHandler) -> None:
        """Serve the connection until either side ends it."""
        writer = asyncio.create_task(self._write_loop(), name=f"sim-ws-writer-{self.id}")
        keeper = asyncio.create_task(self._keep_loop(), name=f"sim-ws-keeper-{self.id}")
        try:
            await self._read_loop(on_text)
        finally:
            for task in (writer, keeper):
                task.cancel()
            for task in (writer, keeper):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if not self.ws.closed and self.dropped_reason is None:
                with contextlib.suppress(Exception):
                    await self.ws.close()
            log.debug("ws %s #%d closed (%s)", self.kind, self.id, self.dropped_reason or self.ws.close_code)

    async def _read_loop(self, on_text: TextHandler) -> None:
        async for msg in self.ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG):
                if not self._count_incoming():
                    self.close_after_flush(WSCloseCode.POLICY_VIOLATION, b"Too many messages")
                    continue
            if msg.type is WSMsgType.PING:
                if not self.frozen:
                    await self.ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG and bytes(msg.data) in self._ping_payloads:
                # Binance: a pong must echo a ping's payload; unsolicited pongs do not count.
                self._unanswered = None
                self._ping_payloads.clear()
            elif msg.type is WSMsgType.TEXT and not self._closing:
                await on_text(self, msg.data)

    def _count_incoming(self) -> bool:
        """Binance: more than 10 incoming messages in a second gets the connection closed."""
        now = asyncio.get_running_loop().time()
        window = self._incoming
        window.append(now)
        while window and now - window[0] >= 1.0:
            window.popleft()
        return len(window) <= self.limits.max_incoming_per_s

    async def _write_loop(self) -> None:
        ws = self.ws
        outbox = self._outbox
        try:
            while True:
                while outbox and not self.frozen:
                    item = outbox.popleft()
                    if isinstance(item, _Close):
                        await ws.close(code=item.code, message=item.message)
                        return
                    await ws.send_frame(item, WSMsgType.TEXT)
                self._wakeup.clear()
                await self._wakeup.wait()
        except (ConnectionError, RuntimeError) as exc:
            self.abort(f"write failed: {exc!r}")

    async def _keep_loop(self) -> None:
        limits = self.limits
        clock = self.clock
        end_ms = self.opened_ms + limits.lifetime_ms
        next_ping = self.opened_ms + limits.ping_interval_ms
        while not self.closed:
            started = asyncio.get_running_loop().time()
            await clock.sleep_until(min(next_ping, end_ms))
            spare = limits.ping_min_wall_s - (asyncio.get_running_loop().time() - started)
            if spare > 0:
                await asyncio.sleep(spare)
            now = clock.now_ms()
            if now >= end_ms:
                log.info("ws %s #%d: 24 hours reached, closing", self.kind, self.id)
                if self.frozen:  # a close frame would not get through either
                    self.abort("24 hours reached while frozen")
                else:
                    self.close_after_flush(WSCloseCode.OK, b"")
                return
            if self.frozen:
                continue
            if self._pong_overdue(now):
                self.abort("no pong within 10 minutes")
                return
            if now >= next_ping:
                await self._ping(now)
                next_ping = now + limits.ping_interval_ms

    async def _ping(self, now_ms: int) -> None:
        if self._unanswered is None:
            self._unanswered = (now_ms, asyncio.get_running_loop().time())
        payload = str(now_ms).encode()
        self._ping_payloads.add(payload)
        try:
            await self.ws.ping(payload)
        except (ConnectionError, RuntimeError) as exc:
            self.abort(f"ping failed: {exc!r}")

    def _pong_overdue(self, now_ms: int) -> bool:
        if self._unanswered is None:
            return False
        sent_ms, sent_wall = self._unanswered
        return (
            now_ms - sent_ms > self.limits.pong_timeout_ms
            and asyncio.get_running_loop().time() - sent_wall > self.limits.pong_timeout_floor_s
        )


async def prepare(request: web.Request) -> web.WebSocketResponse:
    """Accept the upgrade. No compression (Binance streams are plain); we answer pings ourselves."""
    ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    return ws
