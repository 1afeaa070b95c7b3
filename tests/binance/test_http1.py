"""The adapter's HTTP/1.1 client: keep-alive, framing, and what each failure becomes.

Against the real simulator where it can show the behaviour (reuse, a timeout after the write);
against a scripted loopback TCP server where the simulator would never misbehave that way (a
connection closed under a request, malformed or truncated answers, chunked bodies). Every test
ends by itself: no request can wait longer than the client's own timeout.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from aegis.binance import OutcomeUnknown, Retryable
from aegis.binance.http1 import HttpClient, HttpFailure, MalformedResponse
from tests.binance.test_sim_rest import limit_buy
from tests.harness import admin_for, rest_for, running_sim

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-MBX-USED-WEIGHT-1M: 3\r\n\r\n{}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            head += await reader.readexactly(int(line.split(b":")[1]))
    return head


class Scripted:
    """A loopback TCP server; each accepted connection runs the next script."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = list(scripts)
        self.connections = 0
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.scripts.pop(0)(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., Awaitable[Scripted]]]:
    servers: list[asyncio.Server] = []

    async def start(*scripts: Script, ssl_context: ssl.SSLContext | None = None) -> Scripted:
        s = Scripted(*scripts)
        server = await asyncio.start_server(s.handle, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(server)
        s.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return s

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def answer(*responses: bytes, then_close: bool = False) -> Script:
    """Read a request and write each response in turn, then close (or wait for the client's end)."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for response in responses:
            await read_request(reader)
            writer.write(response)
            await writer.drain()
        if not then_close:
            await reader.read()  # until the client closes

    return script


# --- against the simulator ---------------------------------------------------------------------


async def test_requests_share_one_kept_alive_connection() -> None:
    async with running_sim() as sim, rest_for(sim) as rest:
        await rest.exchange_info()
        placed = await rest.place_order(limit_buy("ka-1"))
        assert (await rest.get_order("BTCUSDT", client_order_id="ka-1")).order_id == placed.order_id
        await rest.cancel_order("BTCUSDT", client_order_id="ka-1")
        assert rest.transport.http.connections_made == 1


async def test_no_answer_after_the_write_is_outcome_unknown_and_the_next_call_gets_a_new_connection() -> None:
    async with running_sim() as sim, admin_for(sim) as admin, rest_for(sim, timeout_s=0.3) as rest:
        await rest.server_time()
        await admin.inject("unknown_outcome", mode="timeout", path="/fapi/v1/order", method="POST", hold_s=5)
        with pytest.raises(OutcomeUnknown, match=r"no answer within 0\.3 s"):
            await rest.place_order(limit_buy("lost-1"))
        assert (await rest.get_order("BTCUSDT", client_order_id="lost-1")).client_order_id == "lost-1"
        assert rest.transport.http.connections_made == 2  # the spent connection was not reused


# --- against a scripted server -----------------------------------------------------------------


async def test_a_get_on_a_connection_the_server_closed_is_resent_on_a_new_one(scripted) -> None:  # type: ignore[no-untyped-def]
    async def answer_then_close_on_the_next(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        await read_request(reader)  # the server gives up on this connection without answering

    server = await scripted(answer_then_close_on_the_next, answer(OK))
    client = HttpClient(server.url, timeout_s=5)
    assert (await client.request("GET", "/a")).body == b"{}"
    response = await client.request("GET", "/b")
    assert response.status == 200 and response.headers["x-mbx-used-weight-1m"] == "3"
    assert server.connections == client.connections_made == 2
    await client.close()


async def test_a_post_on_a_connection_closed_under_it_is_sent_and_unanswered(scripted) -> None:  # type: ignore[no-untyped-def]
    async def answer_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        await read_request(reader)

    server = await scripted(answer_then_drop)
    client = HttpClient(server.url, timeout_s=5)
    await client.request("POST", "/order", body=b"x=1")
    with pytest.raises(HttpFailure, match="connection closed after 0 bytes") as caught:
        await client.request("POST", "/order", body=b"x=2")
    assert caught.value.sent and server.connections == 1  # never resent: it may have been executed
    await client.close()


async def test_connection_close_from_the_server_is_honoured(scripted) -> None:  # type: ignore[no-untyped-def]
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    server = await scripted(answer(closing, then_close=True), answer(OK))
    client = HttpClient(server.url, timeout_s=5)
    for _ in range(2):
        assert (await client.request("POST", "/order", body=b"")).body == b"{}"
    assert server.connections == 2
    await client.close()


@pytest.mark.parametrize(
    ("response", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n", b'{"a":1}'),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-Trailer: 1\r\n\r\n", b"{}"),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", b"{}"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
)
async def test_bodies_framed_every_way_a_server_may_frame_them(scripted, response: bytes, body: bytes) -> None:  # type: ignore[no-untyped-def]
    server = await scripted(answer(response, OK))
    client = HttpClient(server.url, timeout_s=5)
    assert (await client.request("GET", "/x")).body == body
    assert (await client.request("GET", "/y")).body == b"{}"  # and the connection is still in step
    assert server.connections == 1
    await client.close()


async def test_a_body_without_length_runs_until_the_server_closes(scripted) -> None:  # type: ignore[no-untyped-def]
    server = await scripted(answer(b"HTTP/1.1 200 OK\r\n\r\n{\"until\":\"close\"}", then_close=True))
    client = HttpClient(server.url, timeout_s=5)
    assert (await client.request("GET", "/x")).body == b'{"until":"close"}'
    await client.close()


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", "malformed status line"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"cut", "answer truncated"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "answer truncated"),
    ],
)
async def test_a_malformed_or_truncated_answer_is_a_clear_error(scripted, response: bytes, error: str) -> None:  # type: ignore[no-untyped-def]
    server = await scripted(answer(response, then_close=True), answer(OK))
    client = HttpClient(server.url, timeout_s=5)
    with pytest.raises(MalformedResponse, match=error) as caught:
        await client.request("POST", "/fapi/v1/order", body=b"x=1")
    assert caught.value.sent
    assert (await client.request("GET", "/x")).body == b"{}"  # a new connection, in step
    await client.close()


async def test_through_the_adapter_a_garbled_order_answer_is_outcome_unknown_and_a_garbled_read_retryable(
    scripted,  # type: ignore[no-untyped-def]
) -> None:
    garbled = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"orderId\":"
    time_ok = b'HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{"serverTime":1}'
    server = await scripted(answer(time_ok, garbled, then_close=True), answer(garbled, then_close=True))
    from aegis.binance import BinanceRest
    from aegis.clock import Clock

    async with BinanceRest(server.url, "k", "s", Clock(start_ms=1)) as rest:
        with pytest.raises(OutcomeUnknown, match="answer truncated"):
            await rest.place_order(limit_buy("garbled"))
        with pytest.raises(Retryable, match="answer truncated"):
            await rest.klines("BTCUSDT", limit=5)


async def test_a_server_that_never_answers_times_out_as_sent(scripted) -> None:  # type: ignore[no-untyped-def]
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await scripted(silent)
    client = HttpClient(server.url, timeout_s=0.2)
    with pytest.raises(HttpFailure, match=r"no answer within 0\.2 s") as caught:
        await client.request("POST", "/order", body=b"x=1")
    assert caught.value.sent
    await client.close()


async def test_nothing_listening_is_a_failure_before_sending() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    client = HttpClient(f"http://127.0.0.1:{port}", connect_timeout_s=1)
    with pytest.raises(HttpFailure) as caught:
        await client.request("POST", "/order", body=b"x=1")
    assert not caught.value.sent  # safe to retry: nothing reached the exchange
    await client.close()
    with pytest.raises(HttpFailure, match="client closed"):
        await client.request("GET", "/x")


async def test_a_cancelled_request_does_not_leave_its_connection_in_the_pool(scripted) -> None:  # type: ignore[no-untyped-def]
    got: asyncio.Event = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        got.set()
        await reader.read()

    server = await scripted(slow, answer(OK))
    client = HttpClient(server.url, timeout_s=5)
    task = asyncio.create_task(client.request("GET", "/slow"))
    await got.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await client.request("GET", "/x")).body == b"{}"  # not the slow answer, a new connection
    assert client.connections_made == 2
    await client.close()


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


async def test_https_checks_the_certificate_and_speaks_tls(scripted, certificate: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    key, cert = certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server = await scripted(answer(OK, OK), answer(OK), ssl_context=server_ctx)
    trusting = ssl.create_default_context(cafile=str(cert))
    client = HttpClient(server.url, timeout_s=5, ssl_context=trusting)
    for _ in range(2):
        assert (await client.request("GET", "/x")).body == b"{}"
    assert client.connections_made == 1
    await client.close()
    stranger = HttpClient(server.url, timeout_s=5)  # the system's trust store does not know this cert
    with pytest.raises(HttpFailure, match="CERTIFICATE_VERIFY_FAILED") as caught:
        await stranger.request("GET", "/x")
    assert not caught.value.sent
    await stranger.close()
