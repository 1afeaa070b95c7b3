"""How many orders per second aegis.sim sustains: place + cancel over HTTP on loopback.

The simulator runs in its own process (uvloop, rate limits off) like `aegis sim`; several
aiohttp clients in this process each loop: POST /fapi/v1/order (LIMIT GTC, resting) then
DELETE /fapi/v1/order, signed as a real client signs. Prints orders/s and the machine.

    .venv/bin/python bench/bench_sim_orders.py [--seconds 5] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import platform
import subprocess
import sys
import time
from urllib.parse import urlencode

import aiohttp

from aegis.sim.config import DEMO_API_KEY, DEMO_API_SECRET
from bench.sim_process import free_port

SERVER = """
import sys
from aegis.sim.config import SimConfig
from aegis.sim.server import serve
sys.exit(serve(SimConfig(rate_limits=False), "127.0.0.1", int(sys.argv[1])))
"""


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process (Linux /proc), to report what the server itself spends."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def signed(params: dict[str, str]) -> str:
    params = {**params, "timestamp": str(int(time.time() * 1000))}
    q = urlencode(params)
    return q + "&signature=" + hmac.new(DEMO_API_SECRET.encode(), q.encode(), hashlib.sha256).hexdigest()


async def worker(
    session: aiohttp.ClientSession, base: str, price: str, deadline: float, counts: list[int]
) -> None:
    headers = {"X-MBX-APIKEY": DEMO_API_KEY}
    order = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.010",
        "price": price,
    }
    while time.perf_counter() < deadline:
        async with session.post(f"{base}/fapi/v1/order?{signed(order)}", headers=headers) as r:
            body = await r.json()
            if r.status != 200:
                raise RuntimeError(body)
        cancel = {"symbol": "BTCUSDT", "orderId": str(body["orderId"])}
        async with session.delete(f"{base}/fapi/v1/order?{signed(cancel)}", headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(await r.text())
        counts[0] += 1


async def run(seconds: float, clients: int) -> None:
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
        [sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        print(proc.stdout.readline().strip())
        base = f"http://127.0.0.1:{port}"
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"{base}/fapi/v1/ticker/price", params={"symbol": "BTCUSDT"}) as r:
                mark = float((await r.json())["price"])
            price = f"{round(mark * 0.97, 1):.1f}"  # resting: never fills during the run
            warm = [0]
            await asyncio.gather(
                *(worker(session, base, price, time.perf_counter() + 0.5, warm) for _ in range(clients))
            )
            counts = [0]
            cpu0 = cpu_seconds(proc.pid)
            start = time.perf_counter()
            await asyncio.gather(
                *(worker(session, base, price, start + seconds, counts) for _ in range(clients))
            )
            elapsed = time.perf_counter() - start
            server_cpu = cpu_seconds(proc.pid) - cpu0
        pairs = counts[0] / elapsed
        print(
            f"{pairs:,.0f} orders/s placed and cancelled ({2 * pairs:,.0f} requests/s), "
            f"{clients} concurrent clients, {elapsed:.1f} s"
        )
        print(
            f"server CPU {server_cpu:.2f} s = {counts[0] / server_cpu:,.0f} orders/s per server core "
            f"({1e6 * server_cpu / (2 * counts[0]):.0f} us per request); the client side shares the machine"
        )
        print(
            f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.run(run(args.seconds, args.clients))
    except ImportError:
        asyncio.run(run(args.seconds, args.clients))


if __name__ == "__main__":
    main()
