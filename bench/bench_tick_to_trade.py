"""Tick-to-trade: a closed-kline frame in, the first byte of the signed order request out, through
aegis's own path; next to ccxt's ``create_order``, python-binance's ``futures_create_order`` and a
bare hand-signed aiohttp POST, against the same local server in the same run.

Run: ``.venv/bin/python -m bench.bench_tick_to_trade`` (or ``make bench``).

The server is ``bench/stub_exchange.py`` in its own process (its CPU is not ours): a raw asyncio
protocol that writes a closed BTCUSDT 1m candle to aegis's market stream and timestamps the first
byte of the order that answers it, both with ``time.perf_counter_ns()`` (CLOCK_MONOTONIC, one clock
for every process), and writes the next candle ``GAP_US`` after answering that order.

aegis runs as the engine composes it, in this process under uvloop: the REST adapter
(``BinanceRest``), ``MarketFeed`` (its own WebSocket connection, warm-up over REST), the store,
``StrategyRunner`` with a one-line strategy (an IOC limit BUY at the close on every candle), and
``Trader``: risk gate, Decimal sizing, client id, the SQLite journal write (WAL, ``normal``) before
the request, the signed POST, the answer through the store and the journal. The stub answers an IOC
limit ``EXPIRED`` (nothing to trade against), so no position builds up and every tick is alike.
Its exchangeInfo lifts the rate limits and the risk gate allows 1200 orders a minute (its maximum),
so nothing queues; the run stays below that.

Per order, two tick-to-trade figures. In aegis: from the moment the frame's bytes reach this
process (aiohttp's WebSocket protocol receives them, stamped by the bench before any decoding) to the
moment the signed order request is written to the socket (the transport's ``on_send``): that is the
issue's "closed-kline frame in to the first byte of the order out", and what the target is about.
End to end: the stub's write of the frame to the stub's receipt of the order's first byte, both
loopback hops and the OS's scheduling of two processes included (on a loaded 2-core machine those
hops dominate the tail: every peer shows the same tail in the same run). The split shows the four
parts; between decoded and written is what the engine's metric ``aegis_tick_to_trade_seconds`` sees.
CPU = this process's CPU time over a round / orders: the frame's receipt and decode, the strategy,
the order, its answer and the journal rows, everything. The client CPU per order, the issue's ratio
to ccxt's ``create_order``, is ``aegis place_order``: the REST client that replaces ccxt's request
machinery (an order in, the request signed, sent, answered and parsed into an ``Order``); the whole
engine's CPU per order is printed next to it for context.
The peers are timed from the call (``perf_counter_ns`` here) to the stub's first byte, and CPU per
completed call; ``raw socket`` is the floor (the signed POST written by hand on an asyncio stream).
``aegis place_order`` is the adapter alone (``BinanceRest.place_order``: governor, signing, our
HTTP/1.1 client, parsing the answer into an ``Order``), to show what the REST machinery costs.
Rounds are interleaved (aegis, each peer, aegis, ...) so load changes hit all alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import msgspec
from loguru import logger

from aegis.binance import BinanceRest
from aegis.binance.endpoints import Endpoint
from aegis.binance.ratelimit import Cost
from aegis.clock import Clock
from aegis.config import MarketSettings, OrderSettings, RiskSettings
from aegis.domain import OrderRequest, OrderType, Side, TimeInForce
from aegis.market.feed import MarketFeed
from aegis.ops.latency import TICK_RECEIVED, settle_heap
from aegis.state import StateStore
from aegis.strategy.api import Context
from aegis.strategy.runner import StrategyRunner
from aegis.trading.intents import Intent, Outcome
from aegis.trading.journal import SqliteJournal
from aegis.trading.trader import Trader
from bench.machine import describe
from bench.sim_process import answers, free_port, wait_until_up

KEY, SECRET = "bench-key", "bench-secret"
SYMBOL, QTY, PRICE = "BTCUSDT", "0.002", "100000.0"
ROUNDS, PER_ROUND, WARM = 5, 200, 40  # aegis sends WARM + ROUNDS * PER_ROUND < 1200 orders a minute
GAP_US = 2000  # the next candle this long after the answer: the order's answer and journal rows are done


@contextlib.contextmanager
def stub_process() -> Iterator[str]:
    port = free_port()
    child = subprocess.Popen([sys.executable, "-m", "bench.stub_exchange", str(port)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(answers(f"{url}/fapi/v1/ping"), child, "stub exchange")
        yield url
    finally:
        child.terminate()
        child.wait(10)


class IocBuyer:
    """The strategy: an IOC limit BUY at the close of every candle (one intent per tick)."""

    name = "t2t"
    window = 1

    def on_candle(self, ctx: Context) -> Intent:
        intent = ctx.buy(Decimal(QTY), price=ctx.candle.close)
        return msgspec.structs.replace(intent, time_in_force=TimeInForce.IOC)


FRAME_ARRIVED = [0.0]  # perf_counter when the last kline frame's bytes reached this process


def time_frame_arrivals() -> None:
    """Stamp the moment a kline frame's bytes reach aegis's WebSocket protocol, before any decoding.

    aiohttp's ``ResponseHandler`` is the protocol of the market WebSocket (the REST calls use aegis's
    own HTTP client); the stub's frames are unmasked and uncompressed, so the payload shows in the bytes.
    """
    from aiohttp.client_proto import ResponseHandler

    received = ResponseHandler.data_received

    def stamped(self: ResponseHandler, data: bytes) -> None:
        if b'"kline"' in data:
            FRAME_ARRIVED[0] = time.perf_counter()
        received(self, data)

    ResponseHandler.data_received = stamped  # type: ignore[method-assign]


class Aegis:
    """The engine's market -> strategy -> trader path, counting the intents it has executed."""

    def __init__(self, url: str, journal: SqliteJournal) -> None:
        clock = Clock()
        self.rest = BinanceRest(url, KEY, SECRET, clock)
        self.state = StateStore()
        self.feed = MarketFeed(MarketSettings(history_candles=20), [SYMBOL], self.rest, url.replace("http", "ws"), self.state, clock)
        self.journal = journal
        self.clock = clock
        self.trader: Trader | None = None
        self.done = asyncio.Event()
        self.executed = 0
        self.target = 0
        self.outcomes: Counter[str] = Counter()
        self.tasks: list[asyncio.Task[Any]] = []
        self.sends: list[tuple[float, float | None, float]] = []  # (frame's bytes in, frame decoded, request written)
        self.rest.transport.on_send = self._on_send  # the hook of the engine's tick-to-trade metric

    def _on_send(self, endpoint: Endpoint, cost: Cost) -> None:
        if cost.orders:
            self.sends.append((FRAME_ARRIVED[0], TICK_RECEIVED.get(), time.perf_counter()))

    async def start(self) -> None:
        from aegis.trading.filters import FilterBook

        filters = FilterBook(self.rest, self.clock)
        filters.adopt(await self.rest.exchange_info())
        trader = Trader(
            self.rest, filters, self.state, self.journal, self.clock, self.feed.last_price,
            OrderSettings(countdown_cancel_s=0), RiskSettings(max_orders_per_minute=1200, max_daily_loss=Decimal(0)),
        )  # fmt: skip
        execute = trader.execute

        async def counted(intent: Intent) -> Any:
            sub = await execute(intent)
            self.outcomes[sub.outcome] += 1
            self.executed += 1
            if self.executed >= self.target:
                self.done.set()
            return sub

        trader.execute = counted  # type: ignore[method-assign]
        self.trader = trader
        runner = StrategyRunner(IocBuyer(), self.feed, self.state, trader, self.clock)
        await trader.recover()
        for name, job in (("market", self.feed.run), ("strategy", runner.run), ("ledger", trader.ledger.run)):
            self.tasks.append(asyncio.create_task(job(), name=name))
        await self.feed.wait_ready()
        settle_heap()  # as the engine does once trading-ready

    async def ticks(self, control: aiohttp.ClientSession, url: str, n: int) -> None:
        """Let the stub stream ``n`` candles and wait until their orders are answered."""
        self.target, self.executed = n, 0
        self.done.clear()
        async with control.get(f"{url}/stub/ticks", params={"n": str(n), "gap_us": str(GAP_US)}) as r:
            await r.read()
        await self.done.wait()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.rest.close()


# --- the peers: one order per call ------------------------------------------------------------

Place = Callable[[], Awaitable[object]]


@contextlib.asynccontextmanager
async def ccxt_peer(url: str) -> AsyncIterator[Place]:
    import ccxt.async_support as ccxt_async

    ex = ccxt_async.binanceusdm({"apiKey": KEY, "secret": SECRET, "enableRateLimit": False, "options": {"fetchCurrencies": False, "fetchMargins": False}})
    for name, version in (("fapiPublic", "v1"), ("fapiPublicV2", "v2"), ("fapiPublicV3", "v3"),
                          ("fapiPrivate", "v1"), ("fapiPrivateV2", "v2"), ("fapiPrivateV3", "v3")):  # fmt: skip
        ex.urls["api"][name] = f"{url}/fapi/{version}"
    ex.timeout_on_exit = 0
    await ex.load_markets()
    try:
        yield lambda: ex.create_order("BTC/USDT:USDT", "limit", "buy", float(QTY), float(PRICE), {"timeInForce": "IOC"})
    finally:
        await ex.close()


@contextlib.asynccontextmanager
async def python_binance_peer(url: str) -> AsyncIterator[Place]:
    from binance import AsyncClient

    class StubClient(AsyncClient):  # type: ignore[misc]
        FUTURES_URL = f"{url}/fapi"
        API_URL = f"{url}/api"

    client = await StubClient.create(KEY, SECRET)
    try:
        yield lambda: client.futures_create_order(
            symbol=SYMBOL, side="BUY", type="LIMIT", timeInForce="IOC", quantity=QTY, price=PRICE
        )
    finally:
        await client.close_connection()


@contextlib.asynccontextmanager
async def bare_peer(url: str) -> AsyncIterator[Place]:
    session = aiohttp.ClientSession()
    headers = {"X-MBX-APIKEY": KEY}
    order = {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "timeInForce": "IOC", "quantity": QTY, "price": PRICE}

    async def place() -> object:
        query = urlencode({**order, "timestamp": str(int(time.time() * 1000))})
        signature = hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
        async with session.post(f"{url}/fapi/v1/order?{query}&signature={signature}", headers=headers) as r:
            return msgspec.json.decode(await r.read())

    try:
        yield place
    finally:
        await session.close()


@contextlib.asynccontextmanager
async def raw_peer(url: str) -> AsyncIterator[Place]:
    """The floor: the same signed POST written by hand on one kept-alive asyncio stream, no HTTP client."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    order = {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "timeInForce": "IOC", "quantity": QTY, "price": PRICE}
    head = f"POST /fapi/v1/order HTTP/1.1\r\nHost: {host}:{port}\r\nX-MBX-APIKEY: {KEY}\r\n"
    head += "Content-Type: application/x-www-form-urlencoded\r\n"

    async def place() -> object:
        query = urlencode({**order, "timestamp": str(int(time.time() * 1000))})
        signature = hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
        body = f"{query}&signature={signature}".encode()
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        response = await reader.readuntil(b"\r\n\r\n")
        size = int(response.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        return msgspec.json.decode(await reader.readexactly(size))

    try:
        yield place
    finally:
        writer.close()
        await writer.wait_closed()


@contextlib.asynccontextmanager
async def adapter_peer(url: str) -> AsyncIterator[Place]:
    """aegis's REST adapter alone: governor, signing, HTTP client and parsing, without the engine."""
    rest = BinanceRest(url, KEY, SECRET, Clock())
    rest.governor.configure((await rest.exchange_info()).rate_limits)
    ids = iter(range(10**9))

    def place() -> Awaitable[object]:
        request = OrderRequest(SYMBOL, Side.BUY, OrderType.LIMIT, Decimal(QTY), f"bench.{next(ids)}",
                               price=Decimal(PRICE), time_in_force=TimeInForce.IOC)  # fmt: skip
        return rest.place_order(request)

    try:
        yield place
    finally:
        await rest.close()


PEERS = {
    "aegis place_order": adapter_peer,
    "ccxt create_order": ccxt_peer,
    "python-binance": python_binance_peer,
    "bare aiohttp": bare_peer,
    "raw socket": raw_peer,
}


# --- measuring ---------------------------------------------------------------------------------


class Samples:
    def __init__(self) -> None:
        self.latency_us: list[float] = []
        self.call_us: list[float] = []
        self.cpu_s = 0.0
        self.orders = 0
        self.phases_us: list[tuple[float, float, float, float]] = []  # aegis: loopback, decode, decide+send, loopback
        self.journal_writes = 0
        self.journal_s = 0.0

    def line(self, name: str, what: str) -> str:
        p50, p99 = pct(self.latency_us, 50), pct(self.latency_us, 99)
        call = f"  round trip p50 {statistics.median(self.call_us):6.0f} µs" if self.call_us else ""
        return f"  {name:<18} {what:<22} p50 {p50:6.0f} µs  p99 {p99:6.0f} µs  CPU {self.cpu_per_order:6.0f} µs/order{call}"

    @property
    def cpu_per_order(self) -> float:
        return self.cpu_s / self.orders * 1e6


async def stub_times(control: aiohttp.ClientSession, url: str) -> dict[str, list[int]]:
    async with control.get(f"{url}/stub/times") as r:
        times: dict[str, list[int]] = msgspec.json.decode(await r.read())
        return times


async def aegis_round(engine: Aegis, control: aiohttp.ClientSession, url: str, out: Samples) -> None:
    await stub_times(control, url)
    engine.sends.clear()
    writes, write_s = engine.journal.writes, engine.journal.write_seconds_total
    cpu0 = time.process_time()
    await engine.ticks(control, url, PER_ROUND)
    out.cpu_s += time.process_time() - cpu0
    out.orders += PER_ROUND
    out.journal_writes += engine.journal.writes - writes
    out.journal_s += engine.journal.write_seconds_total - write_s
    times = await stub_times(control, url)
    assert len(times["orders"]) == len(times["frames"]) == len(engine.sends) == PER_ROUND, {k: len(v) for k, v in times.items()}
    out.latency_us += [(o - f) / 1000 for f, o in zip(times["frames"], times["orders"], strict=True)]
    for f, o, (arrived, received, sent) in zip(times["frames"], times["orders"], engine.sends, strict=True):
        assert received is not None and arrived * 1e9 > f, "an order that answers no frame"
        a_ns, r_ns, s_ns = arrived * 1e9, received * 1e9, sent * 1e9
        out.phases_us.append(((a_ns - f) / 1000, (r_ns - a_ns) / 1000, (s_ns - r_ns) / 1000, (o - s_ns) / 1000))


async def peer_round(place: Place, control: aiohttp.ClientSession, url: str, out: Samples) -> None:
    await stub_times(control, url)
    starts: list[int] = []
    cpu0 = time.process_time()
    for _ in range(PER_ROUND):
        t0 = time.perf_counter_ns()
        starts.append(t0)
        await place()
        out.call_us.append((time.perf_counter_ns() - t0) / 1000)
    out.cpu_s += time.process_time() - cpu0
    out.orders += PER_ROUND
    times = await stub_times(control, url)
    out.latency_us += [(o - s) / 1000 for s, o in zip(starts, times["orders"], strict=True)]


async def run(url: str, journal_dir: Path) -> int:
    journal = await SqliteJournal.open(journal_dir / "journal.sqlite")
    engine = Aegis(url, journal)
    results = {name: Samples() for name in ("aegis", *PEERS)}
    async with contextlib.AsyncExitStack() as stack:
        control = await stack.enter_async_context(aiohttp.ClientSession())
        await engine.start()
        stack.push_async_callback(engine.close)
        peers = {name: await stack.enter_async_context(make(url)) for name, make in PEERS.items()}
        await engine.ticks(control, url, WARM)  # warm up every path
        engine.outcomes.clear()  # the warm-up's first evaluation (the newest REST candle) has no price yet
        for place in peers.values():
            for _ in range(WARM):
                await place()
        for _ in range(ROUNDS):
            await aegis_round(engine, control, url, results["aegis"])
            for name, place in peers.items():
                await peer_round(place, control, url, results[name])
    await journal.close()
    placed = engine.outcomes[Outcome.PLACED]
    print(f"aegis: {ROUNDS * PER_ROUND} ticks measured after {WARM} to warm up, outcomes {dict(engine.outcomes)}")
    if set(engine.outcomes) != {Outcome.PLACED}:
        print(f"  not every tick placed its order ({placed} placed): the figures are not tick-to-trade")
        return 1
    report(results)
    return 0


def report(results: dict[str, Samples]) -> None:
    print(f"{ROUNDS} interleaved rounds of {PER_ROUND} orders each, sequential, against the stub (own process)")
    aegis = results["aegis"]
    print(aegis.line("aegis", "tick-to-trade"))
    for name in PEERS:
        print(results[name].line(name, "call -> first byte"))
    ccxt_cpu = results["ccxt create_order"].cpu_per_order
    adapter = results["aegis place_order"].cpu_per_order
    own = [p[1] + p[2] for p in aegis.phases_us]
    print(f"  tick-to-trade in aegis (the frame's bytes in -> the signed order's bytes out): {pct(own, 50):.0f} µs p50, "
          f"{pct(own, 99):.0f} µs p99 (target p99 < 1000 µs; sizing, risk and the journal write included)")
    print(f"  end to end through the stub (both loopback hops and the OS scheduler included): "
          f"{pct(aegis.latency_us, 50):.0f} µs p50, {pct(aegis.latency_us, 99):.0f} µs p99")
    print(f"  client CPU per order: aegis place_order / ccxt create_order = {adapter:.0f} / {ccxt_cpu:.0f} µs "
          f"= {adapter / ccxt_cpu:.2f} (target <= 0.50)")
    print(f"  the whole engine per order (frame, feed, strategy, risk, sizing, journal, order, answer) / ccxt "
          f"create_order = {aegis.cpu_per_order:.0f} / {ccxt_cpu:.0f} µs = {aegis.cpu_per_order / ccxt_cpu:.2f}")
    for i, what in enumerate(("stub writes the frame -> its bytes reach aegis (loopback, OS scheduling)",
                              "bytes in -> frame decoded (aiohttp WebSocket reader, msgspec decode, feed)",
                              "decoded -> order request written (store, strategy, risk, sizing, journal, signing, HTTP)",
                              "written -> stub's first byte (loopback, OS scheduling)")):
        part = [p[i] for p in aegis.phases_us]
        print(f"    {pct(part, 50):6.0f} µs p50 {pct(part, 99):6.0f} µs p99  {what}")
    print(f"    journal: {aegis.journal_writes / aegis.orders:.1f} writes per order, "
          f"{aegis.journal_s / aegis.journal_writes * 1e6:.0f} µs each on the loop (commit included)")
    raw = results["raw socket"].cpu_per_order
    print(f"  CPU per order: the REST adapter {adapter:.0f} µs (a hand-written POST on a raw socket {raw:.0f} µs); "
          f"the journal's writes ~{aegis.journal_s / aegis.orders * 1e6:.0f} µs (wall, on the loop); everything else "
          f"(WebSocket frame, feed, store, strategy, risk, sizing, order manager, ledger, loop wake-ups) "
          f"{aegis.cpu_per_order - adapter - aegis.journal_s / aegis.orders * 1e6:.0f} µs")  # fmt: skip


def pct(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, len(ordered) * q // 100)]


def main() -> int:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    print(f"machine: {describe()}")
    import uvloop

    time_frame_arrivals()
    with stub_process() as url, tempfile.TemporaryDirectory() as tmp:
        return uvloop.run(run(url, Path(tmp)))


if __name__ == "__main__":
    raise SystemExit(main())
