"""Sizing decisions per second, next to ccxt's amount_to_precision + price_to_precision on the same inputs.

Run: ``.venv/bin/python -m bench.bench_sizing`` (or ``make bench``).

The mix: intents on every TRADING symbol of the recorded mainnet and testnet exchangeInfo
(887 symbols), half LIMIT and half MARKET, both sides, each worth about 1-50x the symbol's
MIN_NOTIONAL with a quantity and a limit price that are off the step / tick grid (as a strategy
computes them), at a mark placed mid-way (geometrically) in the symbol's PRICE_FILTER range.
Every fifth intent is given as a notional rather than a quantity. One decision is one
``size()`` call: the rounding, every filter check and the SizedOrder or Refusal.

ccxt does less: ``amount_to_precision`` (and ``price_to_precision`` for LIMIT) of a
``binanceusdm`` whose markets are parsed offline from the same payloads, fed the same numbers
as strings (ccxt's exact path; floats would be faster and inexact). It checks no limit.

Rounds are interleaved (ours, ccxt, ours, ...) so load changes on a shared machine hit both
alike; each figure is the median of the rounds, by wall time and by CPU time.
"""

from __future__ import annotations

import json
import pathlib
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import ccxt

from aegis.binance.parse.market import parse_exchange_info
from aegis.domain import OrderType, Side, SymbolFilters
from aegis.trading.sizing import Refusal, SizingRequest, size
from bench.machine import describe

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "binance"
VENUES = ("fapi_v1_exchangeInfo.json", "fapi_v1_exchangeInfo_testnet_2025-12.json")
INTENTS = 20_000
ROUNDS = 9
SEED = 13


class Intent:
    __slots__ = ("ccxt", "filters", "mark", "price_text", "qty_text", "request", "symbol", "venue")

    def __init__(
        self, venue: str, request: SizingRequest, filters: SymbolFilters, mark: Decimal, ccxt_market: Any
    ) -> None:
        self.venue, self.request, self.filters, self.mark, self.ccxt = venue, request, filters, mark, ccxt_market
        self.symbol = request.symbol
        qty = request.quantity if request.quantity is not None else (request.notional or Decimal(0)) / mark
        self.qty_text = format(qty, "f")
        self.price_text = format(request.price, "f") if request.price is not None else None


def mid_mark(f: SymbolFilters) -> Decimal:
    """A mark halfway (geometrically) through the symbol's price range, on its tick grid."""
    lo, hi = f.min_price or f.tick_size, f.max_price or f.min_price * 10_000
    mark = (lo * hi).sqrt()
    return (mark - (mark - f.min_price) % f.tick_size) if f.tick_size else mark.quantize(Decimal(1))


def make_intents(n: int) -> list[Intent]:
    rng = random.Random(SEED)
    pool: list[tuple[str, SymbolFilters, Decimal, Any]] = []
    for name in VENUES:
        ex = ccxt.binanceusdm()
        raw = (FIXTURES / name).read_bytes()
        ex.set_markets(ex.parse_markets(json.loads(raw)["symbols"]))
        for f in parse_exchange_info(raw).symbols.values():
            if f.trading:
                pool.append((name, f, mid_mark(f), ex))
    out = []
    for i in range(n):
        venue, f, mark, ex = rng.choice(pool)
        t = OrderType.LIMIT if i % 2 == 0 else OrderType.MARKET
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        worth = (f.min_notional or Decimal(5)) * Decimal(rng.randint(1000, 50_000)).scaleb(-3)
        price = None
        if t is OrderType.LIMIT:
            offset = Decimal(rng.randint(-300, 300)).scaleb(-4)  # within 3% of the mark
            price = (mark * (1 + offset)).quantize(Decimal(1).scaleb(-12)).normalize()
        at = price or mark
        if i % 5 == 4:
            request = SizingRequest(f.symbol, side, t, notional=worth, price=price)
        else:
            qty = (worth / at).quantize(Decimal(1).scaleb(-9)).normalize()
            request = SizingRequest(f.symbol, side, t, quantity=qty, price=price)
        out.append(Intent(venue, request, f, mark, ex))
    return out


def ours(intent: Intent) -> object:
    return size(intent.request, intent.filters, intent.mark)


def with_ccxt(intent: Intent) -> object:
    ex = intent.ccxt
    try:
        amount = ex.amount_to_precision(intent.symbol, intent.qty_text)
    except ccxt.InvalidOrder:  # truncated to zero
        return None
    if intent.price_text is not None:
        return amount, ex.price_to_precision(intent.symbol, intent.price_text)
    return amount


def measure(funcs: dict[str, Callable[[Intent], object]], items: list[Intent]) -> dict[str, tuple[float, float]]:
    """Median over ROUNDS interleaved rounds: (items per second on the wall, CPU µs per item)."""
    walls: dict[str, list[float]] = {name: [] for name in funcs}
    cpus: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(ROUNDS):
        for name, func in funcs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            for item in items:
                func(item)
            walls[name].append(time.perf_counter() - w0)
            cpus[name].append(time.process_time() - c0)
    return {
        name: (len(items) / statistics.median(walls[name]), statistics.median(cpus[name]) / len(items) * 1e6)
        for name in funcs
    }


def main() -> int:
    print(f"machine: {describe()}")
    intents = make_intents(INTENTS)
    outcomes = Counter(
        f"refused {d.filter} {d.code}" if isinstance(d, Refusal) else f"sized {i.request.type}"
        for i in intents
        if (d := ours(i)) is not None
    )
    symbols = len({(i.venue, i.symbol) for i in intents})
    print(f"intents: {len(intents):,} on {symbols} TRADING symbols (mainnet + testnet), LIMIT/MARKET, both sides; "
          f"median of {ROUNDS} interleaved rounds")  # fmt: skip
    print("  outcomes: " + ", ".join(f"{k} {v:,}" for k, v in outcomes.most_common()))
    for item in intents[:2000]:  # warm up both paths
        ours(item)
        with_ccxt(item)
    results = measure({"sizing": ours, "ccxt": with_ccxt}, intents)
    (rate, cpu), (c_rate, c_cpu) = results["sizing"], results["ccxt"]
    print(f"  sizing  size(): rounding, every filter check, SizedOrder / Refusal  {rate:>9,.0f} decisions/s  {cpu:6.2f} µs CPU")
    print(f"  ccxt    amount_to_precision (+ price_to_precision for LIMIT)       {c_rate:>9,.0f} intents/s    {c_cpu:6.2f} µs CPU")
    print(f"  ratio sizing/ccxt = {rate / c_rate:.2f} by wall time, {c_cpu / cpu:.2f} by CPU time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
