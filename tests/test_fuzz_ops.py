"""Fuzzing the ops endpoint with malformed HTTP: a 4xx/5xx or a closed socket, never a traceback.

Raw bytes over a socket (so nothing a client library would refuse to send is left out): random
methods, paths (very long, percent garbage, raw unicode, no leading slash), versions, headers
(lying Content-Length, broken chunked encoding, garbage names) and bodies, also on the operator
actions (POST /kill, DELETE /halt, POST /reconcile as the engine registers them). Properties:
the first answer is an HTTP status line or nothing; a 2xx only for a route that exists; an action
runs only for its own method and path; nothing is logged at ERROR or with a traceback; and
``GET /health/live`` still answers 200 afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.config import LoggingSettings
from aegis.ops.logs import setup_logging
from aegis.ops.server import OpsServer
from aegis.state import StateStore
from tests.logstate import LineSink, restored_logging


def examples(n: int) -> int:
    """``n`` under the suite's profile (100 examples by default); as many more under a wider one
    (``pytest --hypothesis-profile=explore``: 20x)."""
    return max(1, n * settings.default.max_examples // 100)


ACTIONS = {("POST", "/kill"), ("DELETE", "/kill"), ("DELETE", "/halt"), ("POST", "/reconcile")}
GETS = {"/health", "/health/live", "/metrics", "/state"}
READ_TIMEOUT_S = 120.0  # loop (virtual) seconds: past aiohttp's keep-alive, a hang guard only


@dataclass
class Endpoint:
    server: OpsServer
    port: int
    lines: list[str]
    ran: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    """The ops server as the engine sets it up (its actions only record that they ran)."""
    lines: list[str] = []
    with restored_logging():
        setup_logging(LoggingSettings(level="DEBUG"), stream=LineSink(lines))  # type: ignore[arg-type]
        server = OpsServer(StateStore(), port=0, metrics=lambda: b"# no metrics\n")
        ep = Endpoint(server, 0, lines)
        for method, path in sorted(ACTIONS):
            server.add_action(method, path, lambda m=method, p=path: ep.ran.append((m, p)))
        ep.port = await server.start()
        try:
            yield ep
        finally:
            await server.stop()


async def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` and read what comes back until the server closes or stays silent.

    Our side stays open (aiohttp drops a half-closed connection unanswered); a request the server
    still waits on (a body shorter than its Content-Length) ends with the read timeout.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = b""
    try:
        writer.write(request)
        with contextlib.suppress(ConnectionError, TimeoutError):
            await writer.drain()
            while chunk := await asyncio.wait_for(reader.read(65536), READ_TIMEOUT_S):
                answer += chunk
        return answer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def status_of(answer: bytes) -> int | None:
    """The first final response's status code (past any ``100 Continue``); None if the server
    closed without one."""
    while answer:
        head = answer.split(b"\r\n", 1)[0].split(b" ")
        assert head[0].startswith(b"HTTP/") and head[1].isdigit(), answer[:200]  # aiohttp echoes the version
        status = int(head[1])
        if status >= 200:
            return status
        answer = answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""
    return None


def route_of(method: str, target: str) -> tuple[str, str] | None:
    """(method, path) as the server would route them, if the target is a plain origin path."""
    try:
        path = yarl.URL(target).path
    except (ValueError, TypeError):
        return None
    return method, path


TOKEN = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=10)
ANY_TEXT = st.text(max_size=20)
# Each part is valid about half the time, so a request is often wrong in one way only and gets past
# the first check (a request wrong everywhere only ever meets the request-line parser).
METHODS = st.one_of(
    st.sampled_from(["GET", "POST", "DELETE", "HEAD"]),
    st.sampled_from(["PUT", "PATCH", "OPTIONS", "TRACE", "CONNECT", "get", "BREW", "G\x00T"]) | TOKEN,
)
KNOWN = sorted(GETS | {p for _, p in ACTIONS} | {"/state/candles/BTCUSDT"})
PATHS = st.one_of(
    st.sampled_from(KNOWN),
    st.one_of(
        st.sampled_from(
            ["/", "*", "/kill/", "/health/", "//health", "/HEALTH", "/health?x=%zz", "/state/candles/"]
        ),
        st.builds(lambda n: "/" + "a" * n, st.integers(1_000, 70_000)),  # very long
        st.lists(
            st.sampled_from(["%", "%z", "%zz", "%00", "%ff", "%2F", "%25", "..", "/", "?", "#", "a"]),
            max_size=12,
        ).map(lambda parts: "/" + "".join(parts)),
        ANY_TEXT.map(lambda t: "/" + t),  # raw unicode, controls, spaces
        ANY_TEXT.map(lambda t: "/state/candles/" + t),
        ANY_TEXT,  # no leading slash
        st.just("http://127.0.0.1/health"),
    ),
)
VERSIONS = st.one_of(
    st.just("HTTP/1.1"),
    st.sampled_from(
        ["HTTP/1.0", "HTTP/2.0", "HTTP/9.9", "HTTP/1.1 x", "", "http/1.1", "HTTP/1", "HTTP/1.1\x00"]
    ),
)
HEADERS = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "Content-Length: -1",
                "Content-Length: abc",
                "Content-Length: 99999999999999999999",
                "Content-Length: 10",
                "Content-Length: 0",
                "Transfer-Encoding: chunked",
                "Transfer-Encoding: gzip, chunked",
                "Content-Type: application/json",
                "Content-Encoding: gzip",
                "Expect: 100-continue",
                "Connection: upgrade",
                "Upgrade: websocket",
                "Host:",
                "Host: a b",
                ": empty name",
                "No colon here",
                " leading: space",
                "X-Long: " + "v" * 20_000,
            ]
        ),
        st.tuples(TOKEN, ANY_TEXT).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    ),
    max_size=3,
)
BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=64),
    st.sampled_from([b"{", b'{"kill": true}', b"0\r\n\r\n", b"zz\r\nnot a chunk\r\n", b"\x00" * 100_000]),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes]:
    method, path, version = draw(METHODS), draw(PATHS), draw(VERSIONS)
    host = [] if draw(st.integers(0, 3)) == 3 else ["Host: x"]  # without it HTTP/1.1 stops at the first check
    head = "\r\n".join([f"{method} {path} {version}".rstrip(), *host, *draw(HEADERS)])
    raw = head.encode("utf-8", "surrogatepass") + b"\r\n\r\n" + draw(BODIES)
    return method, path, raw


async def still_alive(port: int) -> None:
    answer = await exchange(port, b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 200 and b'"alive"' in answer, answer[:300]


def clean(lines: list[str]) -> None:
    text = "".join(lines)
    assert "Traceback" not in text and "| ERROR" not in text and "ERROR" not in text, text[-3000:]


@settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests())
async def test_malformed_requests_get_a_client_error_or_a_close_and_the_endpoint_keeps_serving(
    endpoint: Endpoint, req: tuple[str, str, bytes]
) -> None:
    method, target, raw = req
    endpoint.ran.clear()
    status = status_of(await exchange(endpoint.port, raw))
    route = route_of(method, target)
    if status is not None and status < 400:
        assert route is not None, (status, raw[:200])
        known = route in ACTIONS or (route[0] in ("GET", "HEAD") and route[1] in GETS)
        assert known or route[1].startswith("/state/candles/"), (status, raw[:200])
    for ran in endpoint.ran:  # an operator action only for its own method and path
        assert ran == route, (ran, raw[:200])
    await still_alive(endpoint.port)
    clean(endpoint.lines)


@settings(
    max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(sorted(ACTIONS)), BODIES, HEADERS)
async def test_an_action_with_a_garbage_body_runs_once_or_is_refused_never_crashes(
    endpoint: Endpoint, action: tuple[str, str], body: bytes, headers: list[str]
) -> None:
    method, path = action
    endpoint.ran.clear()
    head = "\r\n".join([f"{method} {path} HTTP/1.1", "Host: x", *headers])
    status = status_of(
        await exchange(endpoint.port, head.encode("utf-8", "surrogatepass") + b"\r\n\r\n" + body)
    )
    assert status is None or status == 200 or 400 <= status < 600, status
    assert len(endpoint.ran) <= 1 + body.count(f"{method} {path} HTTP/1.1".encode())  # pipelined in the body
    if status == 200:
        assert endpoint.ran[:1] == [action]
    await still_alive(endpoint.port)
    clean(endpoint.lines)


async def test_an_action_that_fails_is_a_500_and_an_error_in_the_log_and_the_endpoint_keeps_serving() -> None:
    """The counterpart: what the client got wrong is DEBUG, what our own handler got wrong is not hidden."""
    lines: list[str] = []
    with restored_logging():
        setup_logging(LoggingSettings(level="DEBUG"), stream=LineSink(lines))  # type: ignore[arg-type]
        server = OpsServer(StateStore(), port=0)

        def broken() -> None:
            raise RuntimeError("the kill switch file is on a read-only disk")

        server.add_action("POST", "/kill", broken)
        port = await server.start()
        try:
            answer = await exchange(port, b"POST /kill HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert status_of(answer) == 500
            await still_alive(port)
        finally:
            await server.stop()
    text = "".join(lines)
    assert "ERROR" in text and "read-only disk" in text
