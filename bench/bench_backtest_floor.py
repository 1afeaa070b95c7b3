"""The floor under ``aegis backtest``'s speed: what one candle costs before any engine or exchange work.

Run: ``.venv/bin/python -m bench.bench_backtest_floor [--candles N]``

Issue 16 asks for the whole live engine and the simulator in one process, talking over loopback
WebSocket and HTTP, on one virtual clock (aegis.virtualtime), at twice freqtrade's candles per
second. This bench strips that down to the transport alone and measures how fast a candle can go
through it when nobody does anything with it:

* ``clock``: the virtual-time loop fires one timer per candle close and the receiver decodes a
  real-sized combined-stream kline message (msgspec), no socket: the loop's own cost per instant.
* ``raw socket``: the same over a loopback TCP connection with the leanest possible code on both
  ends (asyncio protocols; the server writes a prebuilt WebSocket frame, the client cuts frames
  and decodes them): the cost of one frame through the kernel and the loop's idle check.
* ``aiohttp ws``: the same through aiohttp's WebSocket server and client, which the simulator and
  the engine use: the floor of today's design.

Each with 1 symbol (one frame per instant) and 10 symbols (ten frames per instant, as the combined
stream sends them). The full backtest adds to this floor: the simulator's candle path, matching
and fan-out; the engine's decode, gap checks, store, strategy, risk, orders, journal, user stream
and reconciler; the orders' HTTP round trips. Compare the figures with freqtrade's (quoted in
issue 16: 9,100 / 12,100 candles/s; ``make bench-peers`` measures them here).

Figures (2-CPU AMD EPYC, load 1-3, six runs over a session; the 1-symbol socket cases swing
with how promptly the kernel hands loopback bytes over):

    case                1 symbol          10 symbols
    clock (no socket)   94,000-131,000    310,000-578,000
    raw socket          18,000-41,000     173,000-263,000
    aiohttp ws          11,700-24,400     58,000-67,000
    HTTP round trip     118-142 us: 39-47 us a candle at the example strategy's 0.33 requests

Issue 16's target, 2x freqtrade's 9,100 candles/s, is 55 us a candle on one symbol: the aiohttp
frame (41-85 us) and the orders' round trips (39-47 us) spend it before the simulator or the
engine has done anything; even the raw socket (24-55 us) would leave nothing for them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import msgspec
from aiohttp import web

from aegis import virtualtime
from bench.machine import describe

MINUTE_S = 60.0
PAYLOAD = (
    b'{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1746403260001,"s":"BTCUSDT","k":'
    b'{"t":1746403200000,"T":1746403259999,"s":"BTCUSDT","i":"1m","f":6110812345,"L":6110813345,'
    b'"o":"94270.10","c":"94281.30","h":"94290.00","l":"94262.50","v":"45.123","n":1001,"x":true,'
    b'"q":"4254001.1234","V":"21.456","Q":"2022654.5678","B":"0"}}}'
)
FRAME = bytes([0x81, 126]) + struct.pack("!H", len(PAYLOAD)) + PAYLOAD  # FIN text, 16-bit length
REQUESTS_PER_CANDLE = 0.33  # aegis backtest, BTCUSDT, RSI example: ~470 REST requests a day of 1,440 candles
_decode = msgspec.json.Decoder().decode


class _Count:
    def __init__(self, target: int) -> None:
        self.n = 0
        self.target = target
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def got(self, payload: bytes) -> None:
        _decode(payload)
        self.n += 1
        if self.n == self.target and not self.done.done():
            self.done.set_result(None)


def _closes(send: Callable[[], object], instants: int) -> None:
    """Call ``send`` at each of ``instants`` candle closes, a minute of virtual time apart."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(1, instants + 1):
        loop.call_at(start + i * MINUTE_S, send)


async def clock_only(candles: int, symbols: int) -> None:
    count = _Count(candles)

    def send() -> None:
        for _ in range(symbols):
            count.got(PAYLOAD)

    _closes(send, candles // symbols)
    await count.done


class _Receiver(asyncio.Protocol):
    def __init__(self, count: _Count) -> None:
        self.count = count
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while len(buf) >= 4:
            size = struct.unpack_from("!H", buf, 2)[0]
            if len(buf) < 4 + size:
                break
            self.count.got(buf[4 : 4 + size])
            buf = buf[4 + size :]
        self.buf = buf


async def raw_socket(candles: int, symbols: int) -> None:
    count = _Count(candles)
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[asyncio.BaseTransport] = loop.create_future()
    server = await loop.create_server(lambda: _Sink(accepted), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client, _ = await loop.create_connection(lambda: _Receiver(count), "127.0.0.1", port)
    out = await accepted
    assert isinstance(out, asyncio.WriteTransport)
    frames = FRAME * symbols  # the combined stream's frames of one instant, in one write
    _closes(lambda: out.write(frames), candles // symbols)
    await count.done
    client.close()
    server.close()


class _Sink(asyncio.Protocol):
    def __init__(self, accepted: asyncio.Future[asyncio.BaseTransport]) -> None:
        self.accepted = accepted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.accepted.set_result(transport)


@contextlib.asynccontextmanager
async def _served(
    path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> AsyncIterator[str]:
    """An aiohttp web server on loopback answering GET ``path``; yields its URL."""
    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}{path}"
    finally:
        await runner.cleanup()


async def aiohttp_ws(candles: int, symbols: int) -> None:
    count = _Count(candles)
    text = PAYLOAD.decode()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, compress=False)
        await ws.prepare(request)
        tick = asyncio.Event()

        def due() -> None:
            tick.set()

        _closes(due, candles // symbols)
        while not count.done.done():
            await tick.wait()
            tick.clear()
            for _ in range(symbols):
                await ws.send_str(text)
        await ws.close()
        return ws

    async with (
        _served("/stream", handler) as url,
        aiohttp.ClientSession() as session,
        session.ws_connect(url) as ws,
    ):
        async for msg in ws:
            count.got(msg.data.encode() if isinstance(msg.data, str) else msg.data)
            if count.done.done():
                break


async def http_round_trips(requests: int) -> None:
    """``requests`` GETs, one after another, from aegis's HTTP client to an aiohttp web server."""
    from aegis.binance.http1 import HttpClient

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b'{"serverTime":1746403260001}', content_type="application/json")

    async with _served("/fapi/v1/time", handler) as url:
        client = HttpClient(url.removesuffix("/fapi/v1/time"))
        for _ in range(requests):
            _decode((await client.request("GET", "/fapi/v1/time")).body)
        await client.close()


CASES: dict[str, Callable[[int, int], Awaitable[None]]] = {
    "clock (no socket)": clock_only,
    "raw socket": raw_socket,
    "aiohttp ws": aiohttp_ws,
}


def measure(case: Callable[[int, int], Awaitable[None]], candles: int, symbols: int) -> float:
    started = time.perf_counter()
    virtualtime.run(case(candles, symbols))
    return candles / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(describe())
    print(f"candles/s through the transport alone, median of {args.repeat} ({args.candles:,} candles each)")
    print(f"{'case':<20}{'1 symbol':>12}{'10 symbols':>12}")
    for name, case in CASES.items():
        row = []
        for symbols in (1, 10):
            runs = sorted(measure(case, args.candles, symbols) for _ in range(args.repeat))
            row.append(runs[len(runs) // 2])
        print(f"{name:<20}{row[0]:>12,.0f}{row[1]:>12,.0f}")
    rates = sorted(
        measure(lambda n, _: http_round_trips(n), args.candles // 4, 0) for _ in range(args.repeat)
    )
    trip_us = 1e6 / rates[len(rates) // 2]
    print(
        f"{'HTTP round trip':<20}{trip_us:>10,.0f} us (aiohttp web server, aegis.binance.http1 client, kept alive)"
    )
    print(
        f"  = {REQUESTS_PER_CANDLE * trip_us:,.0f} us a candle at the example strategy's {REQUESTS_PER_CANDLE} requests a candle"
    )
    print(
        "issue 16's target: 2x freqtrade = 18,200 (1 symbol) / 24,200 (10 symbols), the whole engine included"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
