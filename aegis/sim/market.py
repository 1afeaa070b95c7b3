"""Market data: candles for any symbol, the intra-bar price path, klines and the publishing loop.

The loop walks every *active* symbol (streamed by someone, or with resting orders) along its
deterministic price path: it drives order matching segment by segment and publishes kline
events for the symbols the WebSocket side asked for. A clock jump closes (and publishes, in
order) every candle in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any

from aegis.sim.bus import Bus
from aegis.sim.candlefiles import CsvRows, data_files, load_rows
from aegis.sim.candles import MINUTE_MS, Candle, CandleSource, ReplaySource, SyntheticSource, symbol_key
from aegis.sim.clock import SimClock
from aegis.sim.config import DATA_DIR, SimConfig
from aegis.sim.symbols import ExchangeInfo, SymbolSpec
from aegis.sim.wire import fixed

log = logging.getLogger(__name__)

INTERVALS: dict[str, int] = {
    "1m": 1,
    "3m": 3,
    "5m": 5,
    "15m": 15,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "4h": 240,
    "6h": 360,
    "8h": 480,
    "12h": 720,
    "1d": 1440,
    "3d": 4320,
    "1w": 10080,
}
_WEEK_OFFSET_MS = 4 * 1440 * MINUTE_MS  # the epoch was a Thursday; weekly bars open on Monday
# Where in a bar the path visits its extremes: open -> first extreme -> second extreme -> close.
_WAYPOINTS = (0, 20_000, 40_000, MINUTE_MS)

# Called with (symbol, bar, from_offset_ms, to_offset_ms, at_ms) for every stretch of path walked.
PathListener = Callable[[str, Candle, int, int, int], None]



@dataclass(slots=True)
class _Walk:
    processed_ms: int  # path walked (matched and published) up to here


class Market:
    """Candles, prices and the kline loop for every symbol of the exchange."""

    def __init__(self, config: SimConfig, clock: SimClock, bus: Bus, info: ExchangeInfo) -> None:
        self.config = config
        self.clock = clock
        self.bus = bus
        self.info = info
        self._sources: dict[str, CandleSource] = {}
        self._files = data_files(((DATA_DIR,) if config.use_packaged_data else ()) + tuple(config.data_paths))
        self._watch: Counter[str] = Counter()
        self._walks: dict[str, _Walk] = {}
        self.last_closed: dict[str, int] = {}
        self.interest: Callable[[], set[str]] = set
        """Symbols the exchange needs walked (resting orders); set by the Exchange."""
        self.on_path: PathListener | None = None
        self.on_step: Callable[[int], None] | None = None
        """Called with the exchange time at the end of every step (funding)."""
        self._task: asyncio.Task[None] | None = None
        self._closed_row = lru_cache(maxsize=16384)(self._closed_row_uncached)

    # ----- symbols the WS side streams -----
    def watch(self, symbol: str) -> None:
        """Start publishing kline events for ``symbol`` (reference counted; pair with unwatch)."""
        symbol = symbol.upper()
        if symbol not in self.info.symbols:
            return
        self._watch[symbol] += 1
        self.ensure(symbol)

    def unwatch(self, symbol: str) -> None:
        symbol = symbol.upper()
        if self._watch[symbol] > 1:
            self._watch[symbol] -= 1
        else:
            self._watch.pop(symbol, None)

    @property
    def watched(self) -> set[str]:
        return set(self._watch)

    def ensure(self, symbol: str) -> None:
        """Walk ``symbol`` from now on (matching/publishing starts at the current instant)."""
        if symbol not in self._walks:
            self._walks[symbol] = _Walk(self.clock.now_ms())

    @property
    def tracked(self) -> set[str]:
        """Symbols that are or were streamed or traded (for the admin state)."""
        return set(self.last_closed) | set(self._walks)

    # ----- candles and prices -----
    def spec(self, symbol: str) -> SymbolSpec:
        return self.info.symbols[symbol]

    async def load(self) -> None:
        """Read every real candle file now, in a worker thread, so that no request on the event
        loop ever does: a year of 1m candles takes ~0.3 s to read, which would freeze the
        exchange (at 3600x, 18 simulated minutes) on the first order or klines for the symbol."""
        for symbol, paths in self._files.items():
            if symbol in self.info.symbols and symbol not in self._sources:
                rows = await asyncio.to_thread(load_rows, paths)
                self._sources.setdefault(symbol, self._replay(symbol, rows))

    def _replay(self, symbol: str, rows: CsvRows) -> ReplaySource:
        return ReplaySource(rows, symbol_key(symbol, 0), self.spec(symbol).step, aligned=self.config.replay_aligned)

    def source(self, symbol: str) -> CandleSource:
        src = self._sources.get(symbol)
        if src is None:
            paths = self._files.get(symbol)
            if paths is not None:  # not loaded by load(): read here, on the caller's thread
                src = self._replay(symbol, load_rows(paths))
            else:
                src = SyntheticSource(self.spec(symbol), self.config.seed)
            self._sources[symbol] = src
        return src

    def candle(self, symbol: str, open_ms: int) -> Candle:
        return self.source(symbol).candle(open_ms - open_ms % MINUTE_MS)

    def _quantize(self, symbol: str, p: Decimal) -> Decimal:
        tick = self.spec(symbol).tick
        if not tick:
            return p
        return ((p / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick).quantize(tick)

    def _points(self, c: Candle) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        if c.close >= c.open:
            return (c.open, c.low, c.high, c.close)
        return (c.open, c.high, c.low, c.close)

    def path_price(self, symbol: str, c: Candle, offset_ms: int) -> Decimal:
        """The traded price ``offset_ms`` into bar ``c`` (piecewise linear through its extremes)."""
        pts = self._points(c)
        if offset_ms <= 0:
            return pts[0]
        if offset_ms >= MINUTE_MS:
            return pts[3]
        seg = offset_ms // 20_000
        frac = Decimal(offset_ms - _WAYPOINTS[seg]) / 20_000
        return self._quantize(symbol, pts[seg] + (pts[seg + 1] - pts[seg]) * frac)

    def path_range(self, symbol: str, c: Candle, off0: int, off1: int) -> tuple[Decimal, Decimal]:
        """Lowest and highest price the path visits between the two offsets."""
        prices = [self.path_price(symbol, c, off0), self.path_price(symbol, c, off1)]
        pts = self._points(c)
        prices += [pts[i] for i, w in enumerate(_WAYPOINTS) if off0 < w < off1]
        return min(prices), max(prices)

    def price(self, symbol: str, at_ms: int | None = None) -> Decimal:
        """Last/mark price now (or at ``at_ms``)."""
        t = self.clock.now_ms() if at_ms is None else at_ms
        c = self.candle(symbol, t)
        return self.path_price(symbol, c, t - c.open_ms)

    def forming(self, symbol: str, c: Candle, offset_ms: int) -> Candle:
        """The bar as it looks ``offset_ms`` after its open (what the stream and klines show)."""
        if offset_ms >= MINUTE_MS:
            return c
        last = self.path_price(symbol, c, offset_ms)
        pts = self._points(c)
        seen = [pts[0], last] + [pts[i] for i, w in enumerate(_WAYPOINTS) if 0 < w <= offset_ms]
        frac = Decimal(offset_ms) / MINUTE_MS
        spec = self.spec(symbol)
        step = spec.step or Decimal(1)
        vol = (c.volume * frac).quantize(step, rounding=ROUND_DOWN)
        tb = (c.taker_base * frac).quantize(step, rounding=ROUND_DOWN)
        q5 = Decimal("0.00001")
        return Candle(
            c.open_ms,
            c.open,
            max(seen),
            min(seen),
            last,
            vol,
            (c.quote_volume * frac).quantize(q5),
            int(c.trades * frac),
            tb,
            (c.taker_quote * frac).quantize(q5),
        )

    # ----- klines -----
    def klines(
        self, symbol: str, interval: str, start: int | None, end: int | None, limit: int, now: int
    ) -> list[list[Any]]:
        """Binance semantics: oldest first, the still-forming bar last, nothing from the future."""
        iv = INTERVALS[interval] * MINUTE_MS
        off = _WEEK_OFFSET_MS if interval == "1w" else 0
        current = now - (now - off) % iv
        earliest = self.spec(symbol).onboard_ms
        earliest += (off - earliest) % iv
        if start is not None:
            start = max(start, earliest)
            first = start + (off - start) % iv
            last = current if end is None else min(current, end - (end - off) % iv)
            last = min(last, first + (limit - 1) * iv)
        else:
            last = current if end is None else min(current, end - (end - off) % iv)
            first = last - (limit - 1) * iv
        first = max(first, earliest)
        return [self._row(symbol, t, iv, now) for t in range(first, last + 1, iv)]

    def _row(self, symbol: str, open_ms: int, iv: int, now: int) -> list[Any]:
        if iv == MINUTE_MS and open_ms + MINUTE_MS <= now:
            return list(self._closed_row(symbol, open_ms))  # a copy: callers may not share it
        bars = []
        for t in range(open_ms, min(open_ms + iv, now + 1), MINUTE_MS):
            c = self.candle(symbol, t)
            bars.append(self.forming(symbol, c, now - t) if t + MINUTE_MS > now else c)
        agg = bars[0] if len(bars) == 1 else _aggregate(bars)
        return self._format_row(symbol, agg, open_ms, iv)

    def _closed_row_uncached(self, symbol: str, open_ms: int) -> tuple[Any, ...]:
        """A closed 1m row never changes: formatted once (warm-ups ask for the same 1500 bars)."""
        return tuple(self._format_row(symbol, self.candle(symbol, open_ms), open_ms, MINUTE_MS))

    def _format_row(self, symbol: str, agg: Candle, open_ms: int, iv: int) -> list[Any]:
        spec = self.spec(symbol)
        pp, qp = spec.price_precision, spec.quantity_precision
        return [
            open_ms,
            fixed(agg.open, pp),
            fixed(agg.high, pp),
            fixed(agg.low, pp),
            fixed(agg.close, pp),
            fixed(agg.volume, qp),
            open_ms + iv - 1,
            fixed(agg.quote_volume, 5),
            agg.trades,
            fixed(agg.taker_base, qp),
            fixed(agg.taker_quote, 5),
            "0",
        ]

    def kline_event(self, symbol: str, c: Candle, closed: bool, event_ms: int) -> dict[str, Any]:
        """The unwrapped ``{"e": "kline", ...}`` payload with Binance's field set."""
        spec = self.spec(symbol)
        pp, qp = spec.price_precision, spec.quantity_precision
        first_trade = (c.open_ms // MINUTE_MS) * 100_000
        return {
            "e": "kline",
            "E": event_ms,
            "s": symbol,
            "k": {
                "t": c.open_ms,
                "T": c.open_ms + MINUTE_MS - 1,
                "s": symbol,
                "i": "1m",
                "f": first_trade,
                "L": first_trade + max(c.trades, 1) - 1,
                "o": fixed(c.open, pp),
                "c": fixed(c.close, pp),
                "h": fixed(c.high, pp),
                "l": fixed(c.low, pp),
                "v": fixed(c.volume, qp),
                "n": c.trades,
                "x": closed,
                "q": fixed(c.quote_volume, 5),
                "V": fixed(c.taker_base, qp),
                "Q": fixed(c.taker_quote, 5),
                "B": "0",
            },
        }

    # ----- the loop -----
    def step(self, now: int | None = None) -> None:
        """Walk every active symbol's path up to ``now``: match, then publish closes and an update."""
        now = self.clock.now_ms() if now is None else now
        watched = self._watch
        active = set(watched) | self.interest()
        for sym in list(self._walks):
            if sym not in active:
                del self._walks[sym]
        for sym in sorted(active):  # a set's order varies per process: fills and frames would too
            self.ensure(sym)
            self._advance(sym, self._walks[sym], now, sym in watched)
        if self.on_step is not None:
            self.on_step(now)

    def _advance(self, sym: str, walk: _Walk, now: int, publish: bool) -> None:
        t = walk.processed_ms
        moved = t < now
        while t < now:
            bar_open = t - t % MINUTE_MS
            seg_end = min(now, bar_open + MINUTE_MS)
            c = self.candle(sym, bar_open)
            if self.on_path is not None:
                self.on_path(sym, c, t - bar_open, seg_end - bar_open, seg_end)
            if seg_end == bar_open + MINUTE_MS:
                self.last_closed[sym] = bar_open
                if publish:
                    self.bus.publish_kline(sym, self.kline_event(sym, c, True, seg_end))
            t = seg_end
        walk.processed_ms = max(walk.processed_ms, now)
        if publish and moved and now % MINUTE_MS and self.config.partial_klines:
            # (a second step at the same instant, e.g. the loop woken by the jump a request
            # already walked, has nothing new: an update per instant, as Binance's stream)
            c = self.candle(sym, now)
            self.bus.publish_kline(
                sym, self.kline_event(sym, self.forming(sym, c, now - c.open_ms), False, now)
            )

    async def run(self) -> None:
        """Step at the kline cadence (only minute boundaries when partial klines are off), never
        faster than min_wall_step_s."""
        while True:
            now = self.clock.now_ms()
            try:
                self.step(now)
            except Exception:  # a bad tick must not kill the exchange
                log.exception("market step failed")
            boundary = now - now % MINUTE_MS + MINUTE_MS
            nxt = min(now + self.config.kline_update_ms, boundary) if self.config.partial_klines else boundary
            floor_ms = int(self.config.min_wall_step_s * 1000 * self.clock.speed)
            target = max(nxt, now + floor_ms)
            if self.clock.now_ms() >= target:
                await asyncio.sleep(0)  # a step slower than the cadence must still let requests in
            else:
                await self.clock.sleep_until(target)  # (it yields; a second turn per step cost one per candle)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="sim-market")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _aggregate(bars: list[Candle]) -> Candle:
    return Candle(
        bars[0].open_ms,
        bars[0].open,
        max(b.high for b in bars),
        min(b.low for b in bars),
        bars[-1].close,
        sum((b.volume for b in bars), Decimal(0)),
        sum((b.quote_volume for b in bars), Decimal(0)),
        sum(b.trades for b in bars),
        sum((b.taker_base for b in bars), Decimal(0)),
        sum((b.taker_quote for b in bars), Decimal(0)),
    )
