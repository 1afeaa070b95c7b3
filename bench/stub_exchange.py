"""A minimal Binance USD-M stub for latency benchmarks, on a raw asyncio protocol, in its own process.

The simulator is an exchange (matching, accounts, audit): its own handling costs hundreds of µs per
order, which would hide the client's figures. This stub answers only what a tick-to-trade run needs,
as fast as a loop can (uvloop, no framework), and timestamps what the clients cannot see themselves:

* the first byte of every ``POST /fapi/v1/order`` (``time.perf_counter_ns()``: CLOCK_MONOTONIC on
  Linux, the same clock in every process of the machine), answered with a Binance-shaped RESULT
  response: ``EXPIRED`` for an IOC limit (nothing to trade against), ``NEW`` otherwise;
* one combined kline stream (``/market/stream``, WebSocket): after ``GET /stub/ticks?n=N&gap_us=G``
  it writes a closed ``btcusdt@kline_1m`` candle, and G µs after answering the order that candle
  caused, the next one, N times; the moment each frame is written is recorded too;
* ``GET /fapi/v1/time``, ``/fapi/v1/ping``, ``/fapi/v1/exchangeInfo`` (the packaged one, its rate
  limits lifted: the client's governor must not queue a benchmark), ``/fapi/v1/klines`` (a flat
  synthetic series, what a warm-up asks for);
* ``GET /stub/times`` returns and clears the recorded ``{"orders": [...ns], "frames": [...ns]}``.

Run: ``python -m bench.stub_exchange PORT`` (bench_tick_to_trade starts it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import struct
import sys
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MINUTE_MS = 60_000
PRICE = "100000.0"
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_LIFTED = {"REQUEST_WEIGHT": 10_000_000, "ORDERS": 10_000_000}


def exchange_info() -> bytes:
    from aegis.sim.config import EXCHANGE_INFO_PATH

    info = json.loads(EXCHANGE_INFO_PATH.read_bytes())
    for limit in info["rateLimits"]:
        limit["limit"] = _LIFTED.get(limit["rateLimitType"], limit["limit"])
    return json.dumps(info).encode()


def kline_row(open_ms: int) -> list[Any]:
    return [open_ms, PRICE, PRICE, PRICE, PRICE, "1.000", open_ms + MINUTE_MS - 1, PRICE, 10, "0.500", "50000.0", "0"]


def kline_frame(open_ms: int) -> bytes:
    """A closed 1m candle as Binance's combined stream sends it."""
    k = {
        "t": open_ms, "T": open_ms + MINUTE_MS - 1, "s": "BTCUSDT", "i": "1m", "f": 1, "L": 10,
        "o": PRICE, "c": PRICE, "h": PRICE, "l": PRICE, "v": "1.000", "n": 10, "x": True,
        "q": "100000.0", "V": "0.500", "Q": "50000.0", "B": "0",
    }  # fmt: skip
    event = {"e": "kline", "E": open_ms + MINUTE_MS, "s": "BTCUSDT", "k": k}
    return json.dumps({"stream": "btcusdt@kline_1m", "data": event}, separators=(",", ":")).encode()


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked server-to-client frame."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x80 | opcode, n) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


class Exchange:
    """What every connection shares: the recorded times, the stream, the candle clock."""

    def __init__(self) -> None:
        self.info = exchange_info()
        self.order_ids = itertools.count(1_000_000)
        self.orders_ns: list[int] = []
        self.frames_ns: list[int] = []
        self.stream: asyncio.Transport | None = None
        self.next_open = (int(time.time() * 1000) // MINUTE_MS) * MINUTE_MS
        self.ticks_left = 0
        self.gap_s = 0.0
        self.streamed = False

    def served(self, last_open: int) -> None:
        """The stream goes on from the newest candle REST served (the client's warm-up)."""
        if not self.streamed:
            self.next_open = last_open + MINUTE_MS

    def tick(self) -> None:
        """Write the next closed candle to the stream (if a run is on)."""
        if self.ticks_left <= 0 or self.stream is None:
            return
        self.ticks_left -= 1
        self.streamed = True
        frame = ws_frame(kline_frame(self.next_open))
        self.next_open += MINUTE_MS
        self.frames_ns.append(time.perf_counter_ns())
        self.stream.write(frame)

    def after_order(self) -> None:
        if self.ticks_left > 0:
            asyncio.get_running_loop().call_later(self.gap_s, self.tick)


def order_response(params: dict[str, str], order_id: int) -> bytes:
    now = int(time.time() * 1000)
    ioc = params.get("timeInForce") == "IOC"
    return json.dumps({
        "orderId": order_id, "symbol": params.get("symbol", ""), "status": "EXPIRED" if ioc else "NEW",
        "clientOrderId": params.get("newClientOrderId") or f"stub{order_id}", "price": params.get("price", "0"),
        "avgPrice": "0.00", "origQty": params.get("quantity", "0"), "executedQty": "0", "cumQty": "0",
        "cumQuote": "0.00000", "timeInForce": params.get("timeInForce", "GTC"), "type": params.get("type", ""),
        "reduceOnly": params.get("reduceOnly") == "true", "closePosition": False, "side": params.get("side", ""),
        "positionSide": "BOTH", "stopPrice": "0.00", "workingType": "CONTRACT_PRICE", "priceProtect": False,
        "origType": params.get("type", ""), "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0, "updateTime": now,
    }).encode()  # fmt: skip


class Connection(asyncio.Protocol):
    """HTTP/1.1 keep-alive requests, or (after an upgrade) the market stream."""

    def __init__(self, exchange: Exchange) -> None:
        self.ex = exchange
        self.buf = b""
        self.first_ns = 0
        self.transport: asyncio.Transport | None = None
        self.websocket = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # uvloop's is no asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.websocket and self.ex.stream is self.transport:
            self.ex.stream = None

    def data_received(self, data: bytes) -> None:
        if not self.buf:
            self.first_ns = time.perf_counter_ns()
        self.buf += data
        if self.websocket:
            self.client_frames()
            return
        while self.buf:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:] if ":" in h)}
            size = int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + size:
                return
            body, self.buf = self.buf[end + 4 : end + 4 + size], self.buf[end + 4 + size :]
            first, self.first_ns = self.first_ns, time.perf_counter_ns()
            method, target = head[0].split(" ")[:2]
            self.request(method, target, headers, body, first)
            if self.websocket:
                return

    def request(self, method: str, target: str, headers: dict[str, str], body: bytes, first_ns: int) -> None:
        url = urlsplit(target)
        params = dict(parse_qsl(url.query))
        if body:
            params.update(parse_qsl(body.decode()))
        path = url.path
        if path == "/fapi/v1/order" and method == "POST":
            self.ex.orders_ns.append(first_ns)
            self.reply(order_response(params, next(self.ex.order_ids)))
            self.ex.after_order()
        elif path == "/market/stream" and headers.get("upgrade", "").lower() == "websocket":
            self.upgrade(headers["sec-websocket-key"])
        elif path in ("/fapi/v1/time", "/api/v3/time"):
            self.reply(b'{"serverTime":%d}' % int(time.time() * 1000))
        elif path in ("/fapi/v1/ping", "/api/v3/ping"):
            self.reply(b"{}")
        elif path == "/fapi/v1/exchangeInfo":
            self.reply(self.ex.info)
        elif path == "/fapi/v1/klines":
            self.reply(self.klines(params))
        elif path == "/stub/ticks":
            self.ex.ticks_left, self.ex.gap_s = int(params["n"]), int(params.get("gap_us", "2000")) / 1e6
            self.reply(b"{}")
            self.ex.tick()
        elif path == "/stub/times":
            times = {"orders": self.ex.orders_ns, "frames": self.ex.frames_ns}
            self.ex.orders_ns, self.ex.frames_ns = [], []
            self.reply(json.dumps(times).encode())
        else:
            self.reply(b'{"code":-5000,"msg":"Path %s, Method %s is invalid"}' % (path.encode(), method.encode()), 404)

    def klines(self, params: dict[str, str]) -> bytes:
        now_open = (int(time.time() * 1000) // MINUTE_MS) * MINUTE_MS
        limit = int(params.get("limit", "500"))
        end = min(int(params.get("endTime", now_open)), now_open - MINUTE_MS)
        end -= end % MINUTE_MS
        start = int(params.get("startTime", end - (limit - 1) * MINUTE_MS))
        start += -start % MINUTE_MS
        rows = [kline_row(t) for t in range(start, end + 1, MINUTE_MS)][:limit]
        if rows:
            self.ex.served(rows[-1][0])
        return json.dumps(rows).encode()

    def reply(self, body: bytes, status: int = 200) -> None:
        assert self.transport is not None
        reason = b"OK" if status == 200 else b"Not Found"
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (status, reason, len(body), body)
        )

    def upgrade(self, key: str) -> None:
        assert self.transport is not None
        accept = base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: %s\r\n\r\n" % accept
        )
        self.websocket = True
        self.ex.stream = self.transport

    def client_frames(self) -> None:
        """Masked client frames: answer pings, honour close, ignore the rest."""
        assert self.transport is not None
        while len(self.buf) >= 6:
            opcode, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
            at = 2
            if n == 126:
                (n,), at = struct.unpack("!H", self.buf[2:4]), 4
            elif n == 127:
                (n,), at = struct.unpack("!Q", self.buf[2:10]), 10
            if len(self.buf) < at + 4 + n:
                return
            mask, data = self.buf[at : at + 4], self.buf[at + 4 : at + 4 + n]
            self.buf = self.buf[at + 4 + n :]
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if opcode == 0x9:
                self.transport.write(ws_frame(payload, 0xA))
            elif opcode == 0x8:
                self.transport.write(ws_frame(payload[:2], 0x8))
                self.transport.close()


async def serve(port: int) -> None:
    exchange = Exchange()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(exchange), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    port = int(sys.argv[1])
    try:
        import uvloop

        uvloop.run(serve(port))
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(serve(port))


if __name__ == "__main__":
    main()
