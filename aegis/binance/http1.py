"""A lean HTTP/1.1 keep-alive client: the REST adapter's one way to the exchange.

Why not aiohttp: the order path's budget is a few hundred microseconds and aiohttp's request
machinery (``ClientSession.request``, its connector, tracing, multidicts) costs ~170 µs CPU per
call; a plain ``asyncio.Protocol`` over kept-alive connections costs a fraction of that.

What it does: one origin (``http://`` or ``https://``; TLS through :mod:`ssl`'s default context,
certificate and host name checked, SNI set); a pool of idle connections, newest first; requests
with ``Content-Length`` bodies; responses framed by ``Content-Length``, ``chunked`` or the
connection's close. Connections the server closed while idle are dropped before use, and one idle
longer than ``IDLE_S`` is not reused (the server may be closing it just then). Idleness is measured
on the loop's clock: wall time live, exchange time in a backtest (so a loaded machine cannot change
what a backtest does).

Failures raise :class:`HttpFailure` with ``sent``: False when nothing was written (connecting
failed, the client is closed), True once the request's bytes were handed to the socket, because
from then on the exchange may have acted on it (timeouts, resets, a malformed or truncated answer).
A GET that finds its reused connection closed without a byte of answer is resent once on a new
connection (it changes nothing); anything else is the caller's to classify.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

__all__ = ["IDLE_S", "MAX_HEAD", "HttpClient", "HttpFailure", "HttpResponse", "MalformedResponse"]

MAX_HEAD = 64 * 1024  # a status line and headers longer than this are not an HTTP answer we accept
IDLE_S = 30.0  # a connection idle this long is closed, not reused
MAX_IDLE = 8  # idle connections kept; more are closed


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # names lower-cased; repeated headers joined with ", "
    body: bytes


class HttpFailure(Exception):
    """No usable answer; ``sent`` says whether the request's bytes had been written."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class MalformedResponse(HttpFailure):
    """The server's bytes are not an HTTP/1.x response (or stop in the middle of one)."""


class _Closed(Exception):
    """The connection ended; ``answered`` is how many bytes of the answer had arrived."""

    def __init__(self, answered: int, cause: BaseException | None) -> None:
        super().__init__(f"connection closed after {answered} bytes of the answer" + (f" ({cause})" if cause else ""))
        self.answered = answered


class _Parsed:
    __slots__ = ("body_start", "chunked", "headers", "keep_alive", "length", "status")

    def __init__(self, status: int, headers: dict[str, str], body_start: int, keep_alive: bool) -> None:
        self.status = status
        self.headers = headers
        self.body_start = body_start
        self.keep_alive = keep_alive
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.length: int | None = None


def _parse_head(buf: bytearray, end: int, no_body: bool) -> _Parsed:
    """Status line and headers of ``buf[:end]``; raises MalformedResponse."""
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise MalformedResponse(f"malformed status line {lines[0][:80]!r}", sent=True)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise MalformedResponse(f"malformed header line {line[:80]!r}", sent=True)
        key, value = name.lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if parts[0] == "HTTP/1.1" else "keep-alive" in connection
    parsed = _Parsed(int(parts[1]), headers, end + 4, keep_alive)
    if no_body or parsed.status in (204, 304) or 100 <= parsed.status < 200:
        parsed.length = 0
    elif not parsed.chunked and "content-length" in headers:
        raw = headers["content-length"]
        if not raw.isdigit():
            raise MalformedResponse(f"bad Content-Length {raw[:40]!r}", sent=True)
        parsed.length = int(raw)
    elif not parsed.chunked:
        parsed.keep_alive = False  # the body is everything until the server closes
    return parsed


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """The whole chunked body from ``pos`` and where it ends, or None if more bytes are needed."""
    parts: list[bytes] = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > 1024:
                raise MalformedResponse("chunk size line too long", sent=True)
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise MalformedResponse(f"bad chunk size {size_text[:20]!r}", sent=True) from None
        if size < 0:
            raise MalformedResponse("negative chunk size", sent=True)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", pos - 2)  # no trailers: "0\r\n\r\n"; else skip them
            return (b"".join(parts), end + 4) if end >= 0 else None
        if len(buf) < pos + size + 2:
            return None
        if buf[pos + size : pos + size + 2] != b"\r\n":
            raise MalformedResponse("chunk not followed by CRLF", sent=True)
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: writes a request, parses its one answer, flags its end."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[HttpResponse, bool]] | None = None
        self.parsed: _Parsed | None = None
        self.no_body = False
        self.closed = False
        self.idle_since = 0.0

    # --- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():  # bytes nobody asked for: never reuse it
            self.abort()
            return
        try:
            self._advance(eof=False)
        except MalformedResponse as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        self._ended(None)
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    # --- use -------------------------------------------------------------------------------

    def send(self, payload: bytes, no_body: bool) -> asyncio.Future[tuple[HttpResponse, bool]]:
        assert self.transport is not None and self.waiter is None
        self.waiter = asyncio.get_running_loop().create_future()
        self.no_body = no_body
        self.transport.write(payload)
        return self.waiter

    def done(self) -> None:
        """The answer was taken: ready for the next request."""
        self.waiter = None
        self.parsed = None

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # --- parsing ---------------------------------------------------------------------------

    def _advance(self, *, eof: bool) -> None:
        buf = self.buf
        if self.parsed is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise MalformedResponse(f"no end of headers in {MAX_HEAD} bytes", sent=True)
                return
            self.parsed = _parse_head(buf, end, self.no_body)
            if 100 <= self.parsed.status < 200:  # an interim answer (100 Continue): the real one follows
                del buf[: self.parsed.body_start]
                self.parsed = None
                self._advance(eof=eof)
                return
        p = self.parsed
        start = p.body_start
        if p.length is not None:
            if len(buf) < start + p.length:
                return
            body, end = bytes(buf[start : start + p.length]), start + p.length
        elif p.chunked:
            found = _dechunk(buf, start)
            if found is None:
                return
            body, end = found
        else:
            if not eof:
                return
            body, end = bytes(buf[start:]), len(buf)
        leftover = len(buf) > end
        del buf[:end]
        assert self.waiter is not None
        if not self.waiter.done():
            self.waiter.set_result((HttpResponse(p.status, p.headers, body), p.keep_alive and not leftover))

    def _ended(self, exc: BaseException | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.parsed is not None and self.parsed.length is None and not self.parsed.chunked:
            try:
                self._advance(eof=True)  # the body ran until the close: that is its end
                return
            except MalformedResponse as bad:
                self._fail(bad)
                return
        if self.buf or self.parsed is not None:
            self._fail(MalformedResponse(f"answer truncated: {_Closed(len(self.buf), exc)}", sent=True))
        else:
            waiter.set_exception(_Closed(0, exc))

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.abort()


def _origin(url: str) -> tuple[str, int, bool, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) base URL: {url!r}")
    tls = parts.scheme == "https"
    return parts.hostname, parts.port or (443 if tls else 80), tls, parts.path.rstrip("/")


class HttpClient:
    """Requests to one origin over a pool of kept-alive HTTP/1.1 connections."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, tls, self.base_path = _origin(base_url)
        self.ssl = (ssl_context or ssl.create_default_context()) if tls else None
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        default_port = self.port == (443 if tls else 80)
        self._host_line = f"Host: {self.host if default_port else f'{self.host}:{self.port}'}\r\n".encode()
        self._idle: list[_Connection] = []
        self._closed = False
        self.connections_made = 0

    async def request(
        self,
        method: str,
        target: str,
        headers: bytes = b"",
        body: bytes | None = None,
        *,
        on_written: Callable[[], None] | None = None,
    ) -> HttpResponse:
        """Send ``method target`` (a path below the base URL, query included) and read the answer.

        ``headers`` are ready-made ``Name: value\\r\\n`` lines; ``on_written`` is called once the
        request's bytes are in the socket's hands.
        """
        payload = self._payload(method, target, headers, body)
        no_body = method == "HEAD"
        conn = self._take_idle()
        if conn is not None:
            try:
                return await self._exchange(conn, payload, no_body, on_written)
            except _Closed as exc:
                if exc.answered or method != "GET":
                    raise HttpFailure(f"no answer: {exc}", sent=True) from None
                # A GET on a connection the server was closing: nothing happened, send it again.
        conn = await self._connect()
        try:
            return await self._exchange(conn, payload, no_body, on_written)
        except _Closed as exc:
            raise HttpFailure(f"no answer: {exc}", sent=True) from None

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            if conn.transport is not None:
                conn.closed = True
                conn.transport.close()

    # --- internals ---------------------------------------------------------------------------

    def _payload(self, method: str, target: str, headers: bytes, body: bytes | None) -> bytes:
        head = f"{method} {self.base_path}{target} HTTP/1.1\r\n".encode() + self._host_line + headers
        if body is None and method == "GET":
            return head + b"\r\n"
        data = body or b""
        return head + b"Content-Length: %d\r\n\r\n" % len(data) + data

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_S:
                return conn
            conn.abort()
        return None

    async def _connect(self) -> _Connection:
        if self._closed:
            raise HttpFailure("client closed", sent=False)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
                )
        except TimeoutError:
            raise HttpFailure(f"connect to {self.host}:{self.port} timed out", sent=False) from None
        except (OSError, ssl.SSLError) as exc:
            raise HttpFailure(f"connect to {self.host}:{self.port}: {exc}", sent=False) from None
        self.connections_made += 1
        return conn

    async def _exchange(
        self, conn: _Connection, payload: bytes, no_body: bool, on_written: Callable[[], None] | None
    ) -> HttpResponse:
        waiter = conn.send(payload, no_body)
        timer = asyncio.get_running_loop().call_later(self.timeout_s, _expire, waiter, self.timeout_s)
        try:
            if on_written is not None:
                on_written()  # inside the try: if it raises, the connection with a request in flight goes
            response, keep = await waiter
        except BaseException:  # timeout, cancellation, reset, malformed: the connection is spent
            if not waiter.done():
                waiter.cancel()  # nobody will read it: no "exception never retrieved" from the abort
            conn.abort()
            raise
        finally:
            timer.cancel()
        conn.done()
        if keep and not conn.closed and not self._closed and len(self._idle) < MAX_IDLE:
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.append(conn)
        else:
            conn.abort()  # the server ends it (Connection: close) or the pool is full
        return response


def _expire(waiter: asyncio.Future[tuple[HttpResponse, bool]], after_s: float) -> None:
    if not waiter.done():
        waiter.set_exception(HttpFailure(f"no answer within {after_s:g} s", sent=True))
