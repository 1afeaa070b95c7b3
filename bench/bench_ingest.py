"""Kline ingest throughput: aegis MarketFeed vs ccxt.pro vs python-binance on the same frames.

Run: ``.venv/bin/python -m bench.bench_ingest`` (or ``make bench``).

Feed: the simulator cannot push faster than its market loop (50 steps per wall second), so the
frames are generated once from the simulator's own candles and payload builder (Binance's
cadence: an open-candle update every 250 ms, then the closed candle, per symbol) and replayed
over a loopback WebSocket by a server in a separate process that writes pre-encoded frames
straight to the socket: the server costs next to nothing and every client gets the same bytes.

Measured per client, in this process: wall time and CPU time from connecting until the last
frame has been processed (aegis: parsed, the last-price view updated, closed candles in the
StateStore; ccxt.pro: ``watch_ohlcv_for_symbols`` subscription, its OHLCV cache updated;
python-binance: ``futures_multiplex_socket`` messages received as dicts). The ceiling is msgspec
decoding the same frames into the adapter's typed wire Struct in a tight loop, no socket; the
socket floor is aiohttp's ``receive()`` plus that decode over the same replay, nothing else.
"""

from __future__ import annotations

import asyncio
import gc
import os
import pathlib
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from bench import ceiling as bare
from bench.machine import describe
from bench.sim_process import wait_until_up

SYMBOLS = int(os.environ.get("BENCH_INGEST_SYMBOLS", "50"))
MINUTES = int(os.environ.get("BENCH_INGEST_MINUTES", "10"))
UPDATES_PER_MINUTE = 239  # 250 ms cadence, then the closing event
ROUNDS = 3
# python-binance handles a few hundred frames a second here (a debug f-string of every message,
# two wait_for per frame); it is measured on the first frames of the same feed to keep the run short.
PYTHON_BINANCE_FRAMES = int(os.environ.get("BENCH_INGEST_PB_FRAMES", "3000"))

# --- frames ---------------------------------------------------------------------------------


def make_frames(symbols: int, minutes: int) -> tuple[list[str], list[tuple[str, bytes]]]:
    """(symbol names, [(stream name, unwrapped payload)]) in the order Binance would send them."""
    from aegis.sim.config import SimConfig
    from aegis.sim.simulator import Simulator

    sim = Simulator(SimConfig(use_packaged_data=False))
    names = sorted(
        s
        for s, spec in sim.info.symbols.items()
        if spec.quote_asset == "USDT" and spec.status == "TRADING" and s.isalnum()
    )[:symbols]
    market = sim.market
    start = (sim.clock.now_ms() // 60_000 - minutes - 1) * 60_000
    frames: list[tuple[str, bytes]] = []
    for m in range(minutes):
        t = start + m * 60_000
        bars = {s: market.candle(s, t) for s in names}
        for i in range(1, UPDATES_PER_MINUTE + 1):
            offset = i * 250
            for s in names:
                forming = market.forming(s, bars[s], offset)
                frames.append(
                    (f"{s.lower()}@kline_1m", orjson.dumps(market.kline_event(s, forming, False, t + offset)))
                )
        for s in names:
            frames.append(
                (f"{s.lower()}@kline_1m", orjson.dumps(market.kline_event(s, bars[s], True, t + 60_000)))
            )
    return names, frames


def combined(stream: str, payload: bytes) -> bytes:
    return b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"


def ws_frame(payload: bytes) -> bytes:
    """One unmasked server-to-client TEXT frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


# --- the replay server (separate process) ---------------------------------------------------


def serve(port_file: str, frames_file: str) -> None:
    from aiohttp import web

    from aegis.sim.config import EXCHANGE_INFO_PATH

    frames: list[tuple[str, bytes]] = msgspec.msgpack.decode(pathlib.Path(frames_file).read_bytes())
    blob_combined = b"".join(ws_frame(combined(s, p)) for s, p in frames)
    blob_raw = b"".join(ws_frame(p) for _, p in frames)
    info = EXCHANGE_INFO_PATH.read_bytes()

    async def blast(request: web.Request, blob: bytes, wait_subscribe: bool) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, autoping=True)
        await ws.prepare(request)
        if wait_subscribe:  # ccxt.pro: SUBSCRIBE on /market/ws/<n>, answer, then stream unwrapped
            msg = await ws.receive()
            req = orjson.loads(msg.data)
            await ws.send_str(orjson.dumps({"result": None, "id": req.get("id")}).decode())
        assert request.transport is not None
        request.transport.write(blob)
        async for _ in ws:  # keep the connection until the client leaves
            pass
        return ws

    async def stream(request: web.Request) -> web.WebSocketResponse:
        return await blast(request, blob_combined, False)

    async def ws_route(request: web.Request) -> web.WebSocketResponse:
        return await blast(request, blob_raw, True)

    async def exchange_info(_: web.Request) -> web.Response:
        return web.Response(body=info, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/market/stream", stream)
        app.router.add_get("/market/ws/{tail:.*}", ws_route)
        app.router.add_get("/fapi/v1/exchangeInfo", exchange_info)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        pathlib.Path(port_file).write_text(str(port))  # noqa: ASYNC240 - once, before serving
        await asyncio.Event().wait()

    asyncio.run(main())


# --- clients ----------------------------------------------------------------------------------


class Counter:
    def __init__(self, target: int) -> None:
        self.target = target
        self.n = 0
        self.done = asyncio.Event()

    def hit(self, k: int = 1) -> None:
        self.n += k
        if self.n >= self.target:
            self.done.set()


async def run_aegis(port: int, names: list[str], total: int, first_open: int) -> tuple[float, float]:
    from aegis.binance.parse import parse_kline_tick
    from aegis.binance.ws import WsConnection, market_stream_url
    from aegis.clock import Clock
    from aegis.config import MarketSettings
    from aegis.market.feed import MarketFeed
    from aegis.state.store import StateStore

    state = StateStore(max_candles=1000)
    clock = Clock()
    config = MarketSettings(history_candles=1, max_candles=1000)
    feed = MarketFeed(config, names, _NoRest(), f"ws://127.0.0.1:{port}", state, clock)
    for s in feed._symbols.values():  # warmed: every closed candle takes the live path
        s.warmed, s.last_open, s.ready = True, first_open - 60_000, True
    writer = asyncio.create_task(feed._writer())
    counter = Counter(total)

    def on_message(item: Any) -> None:
        feed.on_message(item)
        counter.hit()

    streams = [f"{s.lower()}@kline_1m" for s in names]
    url = market_stream_url(f"ws://127.0.0.1:{port}", streams)
    conn = WsConnection(url, parse_kline_tick, on_message, clock, stale_after_s=30.0)  # as MarketFeed does
    w0, c0 = time.perf_counter(), time.process_time()
    task = asyncio.create_task(conn.run())
    await counter.done.wait()
    await feed.flush()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    stored = sum(len(state.candles(s)) for s in names)
    assert stored == len(names) * MINUTES, f"aegis stored {stored} candles"
    assert conn.parse_errors == 0
    await conn.close()
    task.cancel()
    writer.cancel()
    return wall, cpu


async def run_bare_socket(port: int, names: list[str], total: int) -> tuple[float, float]:
    """The transport floor: aiohttp receive() and msgspec typed decode, nothing else."""
    import aiohttp

    from aegis.binance.ws import market_stream_url

    typed = msgspec.json.Decoder(bare.WsKlineCombined)
    url = market_stream_url(f"ws://127.0.0.1:{port}", [f"{s.lower()}@kline_1m" for s in names])
    w0, c0 = time.perf_counter(), time.process_time()
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=1 << 24) as ws:
        for _ in range(total):
            typed.decode((await ws.receive()).data)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return wall, cpu


class _NoRest:
    async def klines(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no REST in the ingest benchmark")


async def run_ccxt(port: int, names: list[str], total: int) -> tuple[float, float]:
    import ccxt.pro as ccxtpro

    ex = ccxtpro.binanceusdm({"options": {"fetchCurrencies": False, "fetchMargins": False}})
    for key in list(ex.urls["api"]):
        if key.startswith("fapi"):
            ex.urls["api"][key] = f"http://127.0.0.1:{port}/fapi/" + ex.urls["api"][key].rsplit("/", 1)[-1]
    ex.urls["api"]["ws"]["linear"] = f"ws://127.0.0.1:{port}/ws"
    await ex.load_markets()
    symbols = [ex.markets_by_id[n][0]["symbol"] for n in names]
    counter = Counter(total)
    original = ex.handle_message

    def handle_message(client: Any, message: Any) -> None:
        original(client, message)
        if isinstance(message, dict) and message.get("e") == "kline":
            counter.hit()

    ex.handle_message = handle_message
    w0, c0 = time.perf_counter(), time.process_time()
    await ex.watch_ohlcv_for_symbols([[s, "1m"] for s in symbols])
    await counter.done.wait()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    await ex.close()
    return wall, cpu


async def run_python_binance(port: int, names: list[str], total: int) -> tuple[float, float]:
    from binance import AsyncClient, BinanceSocketManager

    client = AsyncClient()
    bsm = BinanceSocketManager(client, max_queue_size=total + 10)
    bsm.FSTREAM_URL = f"ws://127.0.0.1:{port}/"
    streams = [f"{s.lower()}@kline_1m" for s in names]
    n = 0
    w0, c0 = time.perf_counter(), time.process_time()
    async with bsm.futures_multiplex_socket(streams) as socket:
        while n < total:
            msg = await socket.recv()
            assert msg["data"]["e"] == "kline", msg
            n += 1
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    await client.close_connection()
    return wall, cpu


def ceilings(frames: list[tuple[str, bytes]]) -> dict[str, tuple[float, float]]:
    """In-process loops over the same frames as ``str`` (what the WebSocket hands over)."""
    from aegis.binance.parse import parse_kline_tick

    texts = [combined(s, p).decode() for s, p in frames]
    typed = msgspec.json.Decoder(bare.WsKlineCombined)
    loops: dict[str, Callable[[str], Any]] = {
        "msgspec typed decode (ceiling)": typed.decode,
        "aegis parse_kline_tick": parse_kline_tick,
    }
    best = {k: (float("inf"), float("inf")) for k in loops}
    for _ in range(ROUNDS):
        for name, func in loops.items():
            gc.collect()
            w0, c0 = time.perf_counter(), time.process_time()
            for text in texts:
                func(text)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            best[name] = (min(best[name][0], wall / len(texts)), min(best[name][1], cpu / len(texts)))
    return best


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
        return 0
    print(describe())
    t0 = time.perf_counter()
    names, frames = make_frames(SYMBOLS, MINUTES)
    total = len(frames)
    first_open = orjson.loads(frames[0][1])["k"]["t"]
    closed = sum(1 for _, p in frames if b'"x":true' in p)
    print(
        f"frames: {total} ({SYMBOLS} symbols x {MINUTES} minutes x {UPDATES_PER_MINUTE} updates + 1 close;"
        f" {closed} closed), mean {sum(len(p) for _, p in frames) // total + 40} bytes, generated in"
        f" {time.perf_counter() - t0:.1f} s from the simulator's candles; replayed over loopback WebSocket"
    )
    with tempfile.TemporaryDirectory() as tmp:
        frames_file, port_file = os.path.join(tmp, "frames"), os.path.join(tmp, "port")
        pathlib.Path(frames_file).write_bytes(msgspec.msgpack.encode(frames))
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_ingest", "serve", port_file, frames_file]
        )
        try:
            wait_until_up(lambda: bool(os.path.exists(port_file) and pathlib.Path(port_file).read_text()), server,
                          "replay server")  # fmt: skip
            port = int(pathlib.Path(port_file).read_text())
            results = asyncio.run(_clients(port, names, total, first_open))
        finally:
            server.terminate()
            server.wait(10)
    results.update(ceilings(frames))
    report(results, total)
    return 0


async def _clients(
    port: int, names: list[str], total: int, first_open: int
) -> dict[str, tuple[float, float]]:
    """Best (wall, CPU) per message for each client; each reads the replay from its start."""
    pb_frames = min(total, PYTHON_BINANCE_FRAMES)
    runs: dict[str, Callable[[], Any]] = {
        "aegis MarketFeed (WS -> parse -> store)": lambda: run_aegis(port, names, total, first_open),
        "ccxt.pro watch_ohlcv_for_symbols": lambda: run_ccxt(port, names, total),
        "python-binance futures_multiplex_socket": lambda: run_python_binance(port, names, pb_frames),
        "aiohttp receive + typed decode (socket floor)": lambda: run_bare_socket(port, names, total),
    }
    best = {k: (float("inf"), float("inf")) for k in runs}
    for _ in range(ROUNDS):  # interleaved, so a load change on a shared machine hits all alike
        for name, run in runs.items():
            gc.collect()
            wall, cpu = await run()
            n = pb_frames if name.startswith("python-binance") else total
            best[name] = (min(best[name][0], wall / n), min(best[name][1], cpu / n))
    return best


def report(results: dict[str, tuple[float, float]], total: int) -> None:
    """``results``: best wall and CPU seconds per message."""
    rate = {k: 1 / wall for k, (wall, _) in results.items()}
    print(f"\n{'path':<44} {'msg/s':>10} {'CPU us/msg':>11}")
    for name, (_, cpu) in results.items():
        print(f"{name:<44} {rate[name]:>10,.0f} {cpu * 1e6:>11.2f}")
    ours = rate["aegis MarketFeed (WS -> parse -> store)"]
    checks = [
        ("vs ccxt.pro", ours / rate["ccxt.pro watch_ohlcv_for_symbols"], 5.0),
        ("vs python-binance", ours / rate["python-binance futures_multiplex_socket"], 7.0),
        ("vs bare msgspec typed decode", ours / rate["msgspec typed decode (ceiling)"], 0.6),
    ]
    print()
    for label, ratio, target in checks:
        verdict = "met" if ratio >= target else "MISSED"
        print(f"aegis {label:<30} {ratio:6.2f}x  (target >= {target}x: {verdict})")
    in_memory = rate["aegis parse_kline_tick"] / rate["msgspec typed decode (ceiling)"]
    socket_floor = ours / rate["aiohttp receive + typed decode (socket floor)"]
    print(f"aegis vs the socket floor (same transport)    {socket_floor:6.2f}x")
    print(f"aegis parse_kline_tick alone vs the ceiling  {in_memory:6.2f}x  (no socket)")


if __name__ == "__main__":
    raise SystemExit(main())
