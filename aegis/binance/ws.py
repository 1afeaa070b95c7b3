"""One reusable WebSocket connection for Binance market and user streams.

A connection that is open is not a connection that delivers: Binance cuts sockets after
24 h, proxies drop them silently, a listenKey expires while the socket stays up. So this
class answers pings, treats a connection with no message for ``stale_after_s`` as dead,
reconnects with capped, jittered exponential backoff, and tells its owner about every
(re)connect so the owner can backfill candles or reconcile orders for the gap. Frames are
handed to ``decode`` (a msgspec parser) and a frame that fails to parse is logged and
counted, never allowed to end the connection task.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiohttp
import msgspec
from loguru import logger

from aegis.backoff import backoff_delay
from aegis.binance.constants import MAX_INCOMING_PER_SECOND, MAX_STREAMS_PER_CONNECTION
from aegis.binance.errors import ParseError, Retryable
from aegis.clock import TimeSource
from aegis.redact import redact

__all__ = [
    "MAX_STREAMS_PER_CONNECTION",
    "ConnectEvent",
    "WsConnection",
    "disconnect_cause",
    "market_stream_url",
    "split_streams",
    "user_stream_url",
]

MAX_URL_CHARS = 4000
CLOSE_TIMEOUT_S = 2.0  # loop seconds a polite close may take before the connection is dropped
_MIN_WALL_CHECK_S = 0.005  # an accelerated clock must not turn the watchdog into a busy loop  # request lines beyond ~8 KiB are refused by many servers and proxies

T = TypeVar("T")


def market_stream_url(ws_base: str, streams: Sequence[str]) -> str:
    """Combined market stream on the /market route (klines, mark price, tickers)."""
    if not streams:
        raise ValueError("at least one stream is required")
    return f"{ws_base.rstrip('/')}/market/stream?streams={'/'.join(streams)}"


def user_stream_url(ws_base: str, listen_key: str) -> str:
    """User data stream on the /private route (the legacy /ws/<key> was retired in 2026)."""
    return f"{ws_base.rstrip('/')}/private/ws?listenKey={urllib.parse.quote(listen_key, safe='')}"


def split_streams(
    streams: Iterable[str], per_connection: int = MAX_STREAMS_PER_CONNECTION, max_chars: int = MAX_URL_CHARS
) -> list[list[str]]:
    """Group stream names so each connection has <= ``per_connection`` streams and a sane URL."""
    if per_connection < 1:
        raise ValueError("per_connection must be >= 1")
    groups: list[list[str]] = []
    current: list[str] = []
    length = 0
    for name in dict.fromkeys(streams):  # dedupe, keep order
        if current and (len(current) >= per_connection or length + len(name) + 1 > max_chars):
            groups.append(current)
            current, length = [], 0
        current.append(name)
        length += len(name) + 1
    if current:
        groups.append(current)
    return groups


DISCONNECT_CAUSES = ("peer_closed", "error", "stale", "rotation", "listen_key", "requested")


def disconnect_cause(reason: str) -> str:
    """One of ``DISCONNECT_CAUSES`` for a disconnect reason: a bounded metric label, never the text
    (which may name a key or an address)."""
    if reason.startswith("closed by peer"):
        return "peer_closed"
    if reason.startswith("error"):
        return "error"
    if reason.startswith("stale"):
        return "stale"
    if reason.startswith("rotation"):
        return "rotation"
    if "listenKey" in reason:
        return "listen_key"
    return "requested"


@dataclass(frozen=True, slots=True)
class ConnectEvent:
    """What the owner learns on every successful connect."""

    name: str
    connects: int  # 1 on the first connect
    reconnect: bool
    reason: str  # why the previous connection ended ("" on the first connect)
    down_s: float  # engine-clock seconds without a connection (0 on the first connect)
    url: str = ""  # what was connected to (a rotated listenKey shows here); not logged: it holds the key


ConnectCallback = Callable[[ConnectEvent], Awaitable[None] | None]
DisconnectCallback = Callable[[str], Awaitable[None] | None]


class WsConnection(Generic[T]):
    """A self-healing WebSocket: ``run()`` until ``close()``; frames go to ``on_message``."""

    def __init__(
        self,
        url: str,
        decode: Callable[[str | bytes], T],
        on_message: Callable[[T], Any],
        clock: TimeSource,
        *,
        name: str = "ws",
        on_connect: ConnectCallback | None = None,
        on_disconnect: DisconnectCallback | None = None,
        stale_after_s: float | None = 60.0,
        ping_interval_s: float | None = 60.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_lifetime_s: float | None = 23.5 * 3600,
        connect_timeout_s: float = 10.0,
        max_sends_per_s: int = MAX_INCOMING_PER_SECOND // 2,
        min_wall_timeout_s: float = 1.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = url
        self.name = name
        self.clock = clock
        self._decode = decode
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self.stale_after_s = stale_after_s
        self.ping_interval_s = ping_interval_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_lifetime_s = max_lifetime_s
        self.connect_timeout_s = connect_timeout_s
        self.max_sends_per_s = min(max_sends_per_s, MAX_INCOMING_PER_SECOND)
        # Networks fail in wall time: on an accelerated clock, staleness and ping intervals
        # never shrink below this (pings count against Binance's 10 messages/s).
        self.min_wall_timeout_s = min_wall_timeout_s
        self._session = session
        self._own_session = session is None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected_url = ""
        self._closing = False
        self._restart = asyncio.Event()
        self._restart_reason = ""
        self._sent: deque[float] = deque()
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pong = asyncio.Event()  # set by the pump on every pong (see probe)
        self.connected = asyncio.Event()
        self.connects = 0
        self.messages = 0
        self.parse_errors = 0
        self.handler_errors = 0
        self.last_message_at: float | None = None  # engine-clock monotonic seconds
        self.last_disconnect_reason = ""

    # --- owner API ----------------------------------------------------------------------

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def start(self) -> asyncio.Task[None]:
        """Run in a named background task (or await ``run()`` under the engine's supervisor)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"ws-{self.name}")
        return self._task

    def set_url(self, url: str, *, reconnect: bool = True) -> None:
        """Point at a new URL (a rotated listenKey); by default reconnect now."""
        self.url = url
        if reconnect:
            self.reconnect("url changed")

    def reconnect(self, reason: str = "requested") -> None:
        """Drop the current connection and connect again (e.g. after listenKeyExpired)."""
        self._restart_reason = reason
        self._restart.set()

    async def send_json(self, payload: Any) -> None:
        """Send a control message (SUBSCRIBE...), paced under Binance's 10 messages/s."""
        async with self._send_lock:
            await self._pace()
            ws = self._ws
            if ws is None or ws.closed:
                raise Retryable(f"{self.name}: not connected")
            try:
                await ws.send_str(msgspec.json.encode(payload).decode())
            except (aiohttp.ClientError, ConnectionError) as exc:
                raise Retryable(f"{self.name}: send failed ({type(exc).__name__})") from None

    async def probe(self, timeout_s: float = 10.0) -> bool:
        """Ping now and wait up to ``timeout_s`` (engine seconds, at least ``min_wall_timeout_s``
        of wall time) for the pong: False if the connection is half-open (or not connected).

        Silence on a stream that may legitimately be idle (the user stream) proves nothing;
        a ping that is not answered does, without waiting for the next heartbeat.
        """
        ws = self._ws
        if ws is None or ws.closed:
            return False
        self._pong.clear()
        try:
            await ws.ping(b"probe")
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            return False
        try:
            await asyncio.wait_for(self._pong.wait(), self._wall(timeout_s))
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self._closing = True
        self._restart.set()
        if self._ws is not None:
            # A polite close waits for the peer's close frame; a peer that never sends one (a frozen
            # socket) must not hold a shutdown for aiohttp's 10 s: the session close aborts it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ws.close(), CLOSE_TIMEOUT_S)
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # --- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, read, reconnect; returns only after ``close()``."""
        failures = 0
        down_since: float | None = None
        reason = ""
        while not self._closing:
            try:
                ws = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                reason = redact(f"connect failed: {type(exc).__name__}: {exc}")
                down_since = self.clock.monotonic() if down_since is None else down_since
                delay = backoff_delay(failures, self.backoff_initial_s, self.backoff_max_s)
                logger.warning("{}: {}; retrying in {:.2f} s", self.name, reason, delay)
                await self._sleep_or_restart(delay)
                continue
            self.connects += 1
            down = 0.0 if down_since is None else self.clock.monotonic() - down_since
            event = ConnectEvent(
                self.name, self.connects, self.connects > 1, reason, down, self._connected_url
            )
            if event.reconnect:
                logger.info(
                    "{}: reconnected (#{}, after {!r}, down {:.2f} s)",
                    self.name,
                    self.reconnects,
                    reason,
                    down,
                )
            await self._notify(self._on_connect, event)
            started = self.clock.monotonic()
            reason = await self._read(ws)
            self.last_disconnect_reason = reason
            self.connected.clear()
            self._ws = None
            with contextlib.suppress(Exception):
                await ws.close()
            if self._closing:
                break
            down_since = self.clock.monotonic()
            lived = down_since - started
            failures = 0 if lived > max(self.backoff_max_s, 10 * self.backoff_initial_s) else failures + 1
            logger.warning("{}: disconnected ({})", self.name, reason)
            await self._notify(self._on_disconnect, reason)
            if failures:
                await self._sleep_or_restart(backoff_delay(failures, self.backoff_initial_s, self.backoff_max_s))

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        heartbeat = None if self.ping_interval_s is None else self._wall(self.ping_interval_s)
        url = self.url
        self._restart.clear()  # a set_url() from here on triggers a fresh reconnect
        ws = await asyncio.wait_for(
            self._session.ws_connect(
                url,
                autoping=False,  # the pump answers pings itself and sees pongs (probe)
                heartbeat=heartbeat,  # our pings detect a dead TCP path the server cannot report
                max_msg_size=16 * 1024 * 1024,
            ),
            timeout=self.connect_timeout_s,
        )
        self._ws = ws
        self._connected_url = url
        self.connected.set()
        return ws

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        """Read until the connection ends; return why it ended.

        A pump task awaits ``receive()`` back to back (no per-frame timer or task: a
        ``receive(timeout=...)`` arms and cancels a timer for every frame, which cost more
        than the decode). This loop wakes only when the pump ends, ``reconnect()`` /
        ``close()`` is called, or the next staleness / rotation deadline passes.
        (Design from the engine's LeanWsConnection, which this replaces.)
        """
        opened = self.clock.monotonic()
        pump = asyncio.create_task(self._pump(ws), name=f"ws-{self.name}-pump")
        restart = asyncio.ensure_future(self._restart.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {pump, restart}, timeout=self._next_check_s(opened), return_when=asyncio.FIRST_COMPLETED
                )
                if restart in done:
                    return "closing" if self._closing else self._restart_reason or "restart"
                if pump in done:
                    return pump.result()
                if self._lifetime_over(opened):
                    return "rotation before the 24 h cut"
                if self.stale_after_s is not None and self._silent_wall_s(opened) >= self._wall(
                    self.stale_after_s
                ):
                    return f"stale: no message for {self.stale_after_s} s"
        finally:
            restart.cancel()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        """Hot loop: frames straight to ``_deliver``; returns why the socket ended."""
        deliver = self._deliver
        text, binary, error = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.ERROR
        ping, pong = aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG
        try:
            while True:
                msg = await ws.receive()
                kind = msg.type
                if kind is text or kind is binary:
                    deliver(msg.data)
                elif kind is ping:
                    await ws.pong(msg.data)  # Binance: the pong echoes the ping's payload
                elif kind is pong:
                    self._pong.set()
                elif kind is error:
                    return redact(f"error: {ws.exception()!r}")
                else:  # CLOSE, CLOSING, CLOSED
                    return f"closed by peer ({ws.close_code})"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let the connection task die with the socket
            return redact(f"error: {type(exc).__name__}: {exc}")

    def _silent_wall_s(self, opened: float) -> float:
        """Wall seconds since the last frame (or since the connection opened)."""
        last = self.last_message_at
        since = opened if last is None or last < opened else last
        return self.clock.wall_seconds(self.clock.monotonic() - since)

    def _next_check_s(self, opened: float) -> float | None:
        """Wall seconds until the nearest deadline: staleness (from the last frame) or rotation."""
        limits = []
        if self.stale_after_s is not None:
            limits.append(self._wall(self.stale_after_s) - self._silent_wall_s(opened))
        if self.max_lifetime_s is not None:
            limits.append(self.clock.wall_seconds(self.max_lifetime_s - (self.clock.monotonic() - opened)))
        if not limits:
            return None
        return max(_MIN_WALL_CHECK_S, min(limits))

    def _wall(self, seconds: float) -> float:
        return max(self.min_wall_timeout_s, self.clock.wall_seconds(seconds))

    def _lifetime_over(self, opened: float) -> bool:
        return self.max_lifetime_s is not None and self.clock.monotonic() - opened >= self.max_lifetime_s

    def _deliver(self, data: str | bytes) -> None:
        self.messages += 1
        self.last_message_at = self.clock.monotonic()
        try:
            item = self._decode(data)
        except ParseError as exc:
            self.parse_errors += 1
            logger.warning(
                "{}: unparseable frame skipped ({}): {!r}", self.name, exc.message, str(data)[:200]
            )
            return
        except Exception:  # a decoder that breaks its contract still must not end the stream
            self.parse_errors += 1
            logger.exception("{}: decoder failed; frame skipped: {!r}", self.name, str(data)[:200])
            return
        try:
            self._on_message(item)
        except Exception:
            self.handler_errors += 1
            logger.exception("{}: message handler failed; connection kept", self.name)

    async def _notify(self, callback: Callable[[Any], Awaitable[None] | None] | None, arg: Any) -> None:
        if callback is None:
            return
        try:
            result = callback(arg)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("{}: connection callback failed", self.name)

    async def _sleep_or_restart(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._restart.wait(), timeout=self.clock.wall_seconds(seconds))
        self._restart.clear()

    async def _pace(self) -> None:
        """At most ``max_sends_per_s`` messages in any one-second window of the engine clock."""
        while True:
            now = self.clock.monotonic()
            while self._sent and now - self._sent[0] >= 1.0:
                self._sent.popleft()
            if len(self._sent) < self.max_sends_per_s:
                self._sent.append(now)
                return
            await self.clock.sleep(1.0 - (now - self._sent[0]))
