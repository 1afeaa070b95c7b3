"""How many kline messages per second the simulator fans out to many WebSocket subscribers.

The simulator runs in its own process on an accelerated clock; this process opens N combined
connections, each subscribed to the same symbols, and counts the frames it receives. Three
scenarios by default: fan-out (50 connections x 10 and x 80 symbols) at the market loop's
default cadence (a step every 20 ms of wall time: about 100 events/s per symbol at x3600), and
one connection on 50 symbols with the loop stepping every millisecond and 250 ms updates, the
figure to compare with an ingest benchmark (the simulator must deliver more to one connection
than the engine can ingest).

    .venv/bin/python -m bench.bench_sim_ws [--connections N --symbols M] [--seconds 5] [--speed 3600]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import aiohttp

from aegis.sim.config import EXCHANGE_INFO_PATH
from bench.machine import describe
from bench.sim_process import answers, free_port, wait_until_up

FIRST = ("BTCUSDT", "ETHUSDT")


def _symbols(n: int) -> list[str]:
    """BTCUSDT and ETHUSDT (replayed real candles), then trading perpetuals (synthetic walks)."""
    info = json.loads(EXCHANGE_INFO_PATH.read_text())
    others = sorted(
        s["symbol"]
        for s in info["symbols"]
        if s["status"] == "TRADING" and s["contractType"] == "PERPETUAL" and s["symbol"] not in FIRST
    )
    return [*FIRST, *others][:n]

_SERVE = """
import logging, sys
logging.basicConfig(level=logging.INFO if len(sys.argv) > 5 else logging.WARNING)
from aegis.sim.config import SimConfig
from aegis.sim.server import serve
serve(SimConfig(speed=float(sys.argv[1]), kline_update_ms=int(sys.argv[2]), rate_limits=False,
               min_wall_step_s=float(sys.argv[4])), port=int(sys.argv[3]))
"""


@contextlib.contextmanager
def _simulator(speed: float, update_ms: int, step_s: float, verbose: bool) -> Iterator[int]:
    port = free_port()
    argv = [sys.executable, "-c", _SERVE, str(speed), str(update_ms), str(port), str(step_s)]
    argv += ["-v"] if verbose else []
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        wait_until_up(answers(f"http://127.0.0.1:{port}/fapi/v1/ping"), child, "simulator process")
        yield port
    finally:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


async def _consume(ws: aiohttp.ClientWebSocketResponse, counts: list[int], i: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        msg = await ws.receive()
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return
        counts[i] += 1


async def run(
    connections: int, symbols: int, seconds: float, speed: float, update_ms: int, step_s: float, verbose: bool
) -> None:
    streams = "/".join(f"{s.lower()}@kline_1m" for s in _symbols(symbols))
    with _simulator(speed, update_ms, step_s, verbose) as port:
        async with aiohttp.ClientSession() as session:
            url = f"ws://127.0.0.1:{port}/market/stream?streams={streams}"
            sockets = [await session.ws_connect(url, max_msg_size=0) for _ in range(connections)]
            counts = [0] * connections
            stop = asyncio.Event()
            tasks = [asyncio.create_task(_consume(ws, counts, i, stop)) for i, ws in enumerate(sockets)]
            await asyncio.sleep(1.0)  # warm-up: every symbol walking, every socket flowing
            before, started = sum(counts), time.monotonic()
            per_conn_before = list(counts)
            await asyncio.sleep(seconds)
            elapsed = time.monotonic() - started
            total = sum(counts) - before
            per_conn = sorted(c - b for c, b in zip(counts, per_conn_before, strict=True))
            alive = sum(1 for ws in sockets if not ws.closed)
            async with session.get(f"http://127.0.0.1:{port}/_sim/streams") as resp:
                drops = (await resp.json())["market"]["drops"]
            stop.set()
            for task in tasks:
                task.cancel()
            for ws in sockets:
                await ws.close()
    print(describe())
    print(
        f"{connections} connections x {symbols} symbols, clock x{speed:g}, kline update every {update_ms} sim ms, "
        f"market step >= {step_s * 1000:g} ms wall: "
        f"{total / elapsed:,.0f} msgs/s fanned out in total; per connection "
        f"min {per_conn[0] / elapsed:,.0f} / median {per_conn[len(per_conn) // 2] / elapsed:,.0f} msgs/s; "
        f"{alive}/{connections} connections still open" + (f", server dropped: {drops}" if drops else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, help="one scenario with this many connections")
    parser.add_argument("--symbols", type=int, help="one scenario with this many symbols")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--speed", type=float, default=3600.0, help="keep 24 sim hours > the run (the 24 h cut)")
    parser.add_argument("--update-ms", type=int, default=2000, help="intermediate kline update cadence (sim ms)")
    parser.add_argument("--step-s", type=float, default=0.02, help="market loop's minimum wall step (SimConfig.min_wall_step_s)")
    parser.add_argument("--verbose", action="store_true", help="show the simulator's log (dropped connections)")
    args = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    if args.connections is None and args.symbols is None:
        # fan-out at the default market cadence, then one connection with the market loop
        # stepping every millisecond (Binance's 250 ms updates): the ceiling for an ingest client
        scenarios = [(50, 10, args.update_ms, args.step_s), (50, 80, args.update_ms, args.step_s), (1, 50, 250, 0.001)]
    else:
        scenarios = [(args.connections or 50, args.symbols or 10, args.update_ms, args.step_s)]
    for connections, symbols, update_ms, step_s in scenarios:
        runner(run(connections, symbols, args.seconds, args.speed, update_ms, step_s, args.verbose))


if __name__ == "__main__":
    main()
