"""MarketFeed: closed 1-minute candles for every configured symbol, complete, in order, never invented.

Sources: one combined kline stream per group of symbols (``/market/stream?streams=...``, split
where Binance's 1024-streams-per-connection limit or a sane URL length requires), and REST
klines for the warm-up, for every gap the stream leaves and for the interval a reconnect
missed. Rules, per symbol:

* only closed (``x=true``) candles are history; open-candle updates feed a last-price view
  without building a single Decimal;
* a closed candle whose open time is not the previous one + 1 minute opens a gap; newer
  candles wait until the gap is fetched from REST and stored, in order, before them;
* duplicates and out-of-order events are dropped (or merged by open time) and counted;
* after every reconnect the interval since the last stored candle is fetched;
* what the exchange itself cannot supply is recorded as a hole (``state.record_hole``) and
  the windows containing it are reported dirty: a candle is never made up.

Every decision is taken synchronously when the event arrives (or when a REST answer comes
back) and the resulting writes go through one queue to the store, so the store receives
each symbol's candles strictly in open-time order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Final

from loguru import logger

from aegis.binance.clock import ServerClock
from aegis.binance.errors import ParseError
from aegis.binance.parse import KlineTick, parse_kline_tick, tick_candle
from aegis.binance.ws import ConnectEvent, WsConnection, disconnect_cause, market_stream_url, split_streams
from aegis.clock import TimeSource
from aegis.config import MarketSettings
from aegis.domain import MINUTE_MS, Candle
from aegis.market import health
from aegis.market.backfill import Backfiller, KlineSource
from aegis.market.symbol import Job, SymbolTrack, Verdict, hole_ranges
from aegis.market.view import FeedLog, FeedSummary
from aegis.market.writer import StoreWriter, Write
from aegis.state.store import StateStore, StatusValue

__all__ = ["MarketFeed"]

STATUS_NAME: Final = "market"


CandleListener = Callable[[str, int], None]


class MarketFeed:
    """The long-lived market task: ``await run()`` under the supervisor (critical, named "market")."""

    def __init__(
        self,
        settings: MarketSettings,
        symbols: Sequence[str],
        rest: KlineSource,
        ws_url: str,
        state: StateStore,
        clock: TimeSource,
        *,
        server_clock: TimeSource | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("at least one symbol is required")
        self.settings = settings
        self.symbols = tuple(symbols)
        self._rest = rest
        self._ws_url = ws_url
        self._state = state
        self._clock = clock
        self._server = server_clock or getattr(rest, "server_clock", None) or clock
        self.backfill = Backfiller(rest, self._server, max_in_flight=settings.max_in_flight)
        self._symbols = {s: SymbolTrack(s) for s in self.symbols}
        self._ready = {s: asyncio.Event() for s in self.symbols}
        self._repairs: dict[str, asyncio.Task[None]] = {}
        self._writes = StoreWriter(state, self._stored, self._mark_ready)
        self._last_price: dict[str, tuple[int, str]] = {}
        self._listeners: list[CandleListener] = []
        self._groups = split_streams(
            [f"{s.lower()}@kline_1m" for s in self.symbols], per_connection=settings.streams_per_connection
        )
        self._group_symbols: list[list[str]] = [[n.split("@", 1)[0].upper() for n in g] for g in self._groups]
        for index, group in enumerate(self._group_symbols):
            for symbol in group:
                self._symbols[symbol].connection = index
        self.connections: list[WsConnection[KlineTick]] = []
        self._down_since: dict[int, float] = {}
        self.disconnects: Counter[str] = Counter()  # by ws.disconnect_cause (metrics)
        self._closed_seen: dict[str, tuple[int, float]] = {}  # symbol -> (open ms, perf_counter at receipt)
        self.updates = 0
        self.unknown_symbol = 0
        self.bad_candles = 0  # closed frames with no valid candle, or off the minute (counted as parse errors)
        self.started = False
        self.view = FeedLog(self.summary, self.backfill.stats)

    # --- public API --------------------------------------------------------------------

    def is_ready(self, symbol: str) -> bool:
        return self._symbols[symbol].ready

    async def wait_ready(self, symbols: Sequence[str] | None = None) -> None:
        await asyncio.gather(*(self._ready[s].wait() for s in symbols or self.symbols))

    def in_sync(self, symbol: str) -> bool:
        """Ready, and no gap or reconnect interval is being fetched right now."""
        return self._symbols[symbol].in_sync()

    def window_is_clean(self, symbol: str, length: int) -> bool:
        """The last ``length`` stored candles are consecutive minutes: no hole, nothing pending."""
        return self._symbols[symbol].window_is_clean(length)

    def may_evaluate(self, symbol: str, length: int) -> bool:
        """Whether the strategy may run on the last ``length`` candles (market.skip_dirty_windows)."""
        s = self._symbols[symbol]
        if self.settings.skip_dirty_windows:
            return s.window_is_clean(length)
        return s.in_sync() and s.stored >= length

    def holes(self, symbol: str) -> tuple[tuple[int, int], ...]:
        return tuple(self._symbols[symbol].holes)

    def last_price(self, symbol: str) -> Decimal | None:
        """Latest traded price from the stream (open-candle updates included); None before any."""
        entry = self._last_price.get(symbol)
        if entry is None:
            return None
        try:  # the hot path keeps the text unchecked: a garbled update must not raise here
            price = Decimal(entry[1])
        except InvalidOperation:
            return None
        return price if price.is_finite() else None

    def last_closed_ms(self, symbol: str) -> int | None:
        """Open time of the newest closed candle in the store."""
        return self._symbols[symbol].stored_last

    @property
    def tracks(self) -> tuple[SymbolTrack, ...]:
        """Every symbol's bookkeeping (read-only use: metrics)."""
        return tuple(self._symbols.values())

    def received_at(self, symbol: str, open_ms: int) -> float | None:
        """``time.perf_counter()`` when the stream delivered the closed candle ``open_ms`` of ``symbol``
        (None if it came from REST): where tick-to-trade latency starts."""
        seen = self._closed_seen.get(symbol)
        return seen[1] if seen is not None and seen[0] == open_ms else None

    def add_listener(self, listener: CandleListener) -> None:
        """``listener(symbol, open_time_ms)`` after closed candles of ``symbol`` reached the store."""
        self._listeners.append(listener)

    async def flush(self) -> None:
        """Wait until every decided write has reached the store (tests, shutdown)."""
        await self._writes.join()

    def problems(self) -> list[str]:
        """/health: silent or down connections, symbols not ready, stale candles, failing gap fills."""
        return health.problems(self)

    # --- the task ----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, warm up, then keep every symbol's series complete until cancelled."""
        self.started = True
        await self._sync_server_clock()
        logger.info(
            "market feed: {} symbols on {} connection(s), {} candles of history each",
            len(self._symbols),
            len(self._groups),
            self.settings.history_candles,
        )
        self.connections = [self._connection(i, g) for i, g in enumerate(self._groups)]
        tasks = [asyncio.create_task(self._writer(), name="market-writer")]
        tasks += [asyncio.create_task(c.run(), name=f"ws-{c.name}") for c in self.connections]
        tasks.append(asyncio.create_task(self._status_loop(), name="market-status"))
        self.view.warmup_started()
        for s in self._symbols.values():
            s.catch_up = s.warmed  # run() again after a crash: fetch what closed while it was down
            self._kick(s)
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in self._repairs.values():
                task.cancel()
            for task in tasks:
                task.cancel()
            for conn in self.connections:
                with contextlib.suppress(Exception):
                    await conn.close()
            self.view.close()

    async def _sync_server_clock(self) -> None:
        """Warm-up ranges are computed in server time; a failed sync is retried, never skipped."""
        if not isinstance(self._server, ServerClock):
            return
        delay = 1.0
        while True:
            try:
                await self._server.ensure_synced()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("market: server time sync failed ({}); retrying in {:.0f} s", exc, delay)
                await self._clock.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _connection(self, index: int, streams: list[str]) -> WsConnection[KlineTick]:
        def on_connect(event: ConnectEvent) -> None:
            self._on_connect(index, event)

        def on_disconnect(reason: str) -> None:
            self._down_since.setdefault(index, self._clock.monotonic())
            self.disconnects[disconnect_cause(reason)] += 1

        return WsConnection(
            market_stream_url(self._ws_url, streams),
            parse_kline_tick,
            self.on_message,
            self._clock,
            name=f"market-{index}",
            on_connect=on_connect,
            on_disconnect=on_disconnect,
            stale_after_s=self.settings.stale_after_s,
            ping_interval_s=self.settings.ping_interval_s or None,
        )

    # --- stream events -----------------------------------------------------------------

    def on_message(self, tick: KlineTick) -> None:
        """Hot path: every frame updates the last price; a closed one goes to its symbol."""
        k = tick.k
        s = self._symbols.get(k.s)
        if s is not None:  # a symbol we do not trade gets no last-price entry to grow the map by
            previous = self._last_price.get(k.s)
            if previous is None or tick.E >= previous[0]:
                self._last_price[k.s] = (tick.E, k.c)
        if not k.x:
            self.updates += 1
            return
        if s is None:
            self.unknown_symbol += 1
            return
        try:
            candle = tick_candle(tick)
        except ParseError as exc:
            self.bad_candles += 1
            logger.warning("market {}: closed candle skipped ({})", k.s, exc.message)
            return
        self._closed_seen[k.s] = (k.t, time.perf_counter())
        self.on_closed(s, candle)

    def on_closed(self, s: SymbolTrack, candle: Candle) -> None:
        verdict = s.on_closed(candle, self._clock.monotonic())
        if verdict is Verdict.STORE:
            self._writes.put_or_write(Write(s.symbol, (candle,)))
        elif verdict is Verdict.QUEUED or (verdict is Verdict.OUT_OF_ORDER and s.pending):
            self._kick(s)
        elif verdict is Verdict.OFF_MINUTE:
            self.bad_candles += 1
            logger.warning(
                "market {}: closed candle at {} is not on a minute; dropped", s.symbol, candle.open_time_ms
            )

    def _on_connect(self, index: int, event: ConnectEvent) -> None:
        self._down_since.pop(index, None)
        if not event.reconnect:
            return
        for symbol in self._group_symbols[index]:
            s = self._symbols[symbol]
            s.catch_up = True
            self._kick(s)

    # --- repair: warm-up, reconnect catch-up, gap fill ---------------------------------

    def _kick(self, s: SymbolTrack) -> None:
        if not s.repairing:
            s.repairing = True
            self._repairs[s.symbol] = asyncio.create_task(self._repair(s), name=f"market-repair-{s.symbol}")

    async def _repair(self, s: SymbolTrack) -> None:
        """Runs while a symbol has work; a REST error that retrying cannot fix is retried slowly."""
        try:
            while True:
                try:
                    await self._repair_until_idle(s)
                    s.error = ""
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    s.error = f"{type(exc).__name__}: {exc}"
                    retry = self.settings.repair_retry_s
                    logger.error("market {}: {}; retrying in {:.0f} s", s.symbol, s.error, retry)
                    await self._clock.sleep(retry)
        finally:
            s.repairing = False  # no await since the last check for work: nothing can slip through
            self._repairs.pop(s.symbol, None)

    async def _repair_until_idle(self, s: SymbolTrack) -> None:
        while True:
            job = s.next_job()
            if job is Job.WARM_UP:
                await self._warm_up(s)
            elif job is Job.CATCH_UP:
                s.catch_up = False
                await self._catch_up(s)
            elif job is Job.DRAIN:
                await self._drain(s)
            else:
                s.pending_since = None
                if not s.ready_queued:
                    s.ready_queued = True
                    self._writes.put(Write(s.symbol, ready=True))
                return

    def _closed_until(self) -> int:
        """Open time of the newest candle that has surely closed by server time."""
        safe = self.backfill.closed_until_ms()
        return safe - safe % MINUTE_MS - MINUTE_MS

    async def _fresh_server_time(self) -> None:
        """Resync the server-time offset if it is older than the adapter's refresh interval.

        Only the unbounded ranges (warm-up, reconnect catch-up) depend on it; a failure is
        logged and the last estimate used, its error margin still applies.
        """
        if not isinstance(self._server, ServerClock):
            return
        try:
            await self._server.ensure_synced()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("market: server time resync failed ({}); using the last offset", exc)

    async def _warm_up(self, s: SymbolTrack) -> None:
        await self._fresh_server_time()
        last = self._closed_until()
        first = last - (self.settings.history_candles - 1) * MINUTE_MS
        # Nothing before the first candle is "not listed yet", nothing after the last is "not yet":
        # neither is a hole. Only stretches between two real candles can be.
        candles = await self._fetch(s, first, last, leading=False, trailing=False, purpose="warmup")
        self._commit(s, candles, first, last, leading=False, trailing=False)
        s.warmed = True
        self.view.symbol_warmed()

    async def _catch_up(self, s: SymbolTrack) -> None:
        if s.last_open is None:
            return
        await self._fresh_server_time()
        first, last = s.last_open + MINUTE_MS, self._closed_until()
        if last < first:
            return
        candles = await self._fetch(s, first, last, leading=True, trailing=False, purpose="reconnect")
        s.backfilled += len(candles)
        self._commit(s, candles, first, last, leading=True, trailing=False)

    async def _drain(self, s: SymbolTrack) -> None:
        step = s.drain_step()
        if isinstance(step, list):
            self._writes.put(Write(s.symbol, tuple(step)))
        elif step is not None:
            first, last = step
            logger.info(
                "market {}: gap of {} candle(s) before {}; fetching",
                s.symbol,
                (last - first) // MINUTE_MS + 1,
                last + MINUTE_MS,
            )
            candles = await self._fetch(s, first, last, leading=True, trailing=True, purpose="gap")
            s.backfilled += len(candles)
            self._commit(s, candles, first, last, leading=True, trailing=True)

    async def _fetch(
        self, s: SymbolTrack, first: int, last: int, *, leading: bool, trailing: bool, purpose: str
    ) -> list[Candle]:
        """REST candles in [first, last], merged with stream candles queued for that range.

        A range the exchange did not return is asked for once more after a pause before it
        can become a hole: REST may lag the stream by a moment.
        """
        # A range that ends before a candle the stream delivered closed is closed, whatever
        # our estimate of server time says.
        proven = last + MINUTE_MS if trailing else None
        fetched = await self.backfill.fetch(s.symbol, first, last, closed_before_ms=proven, purpose=purpose)
        candles = s.merge_pending(fetched, first, last)
        gaps = hole_ranges(candles, first, last, leading=leading, trailing=trailing)
        if gaps:
            await self._clock.sleep(self.settings.hole_confirm_delay_s)
            for a, b in gaps:
                again = await self.backfill.fetch(s.symbol, a, b, closed_before_ms=proven, purpose="confirm")
                candles = s.merge_pending([*candles, *again], first, last)
        return candles

    def _commit(
        self, s: SymbolTrack, candles: list[Candle], first: int, last: int, *, leading: bool, trailing: bool
    ) -> None:
        for op in s.plan_commit(candles, first, last, leading=leading, trailing=trailing):
            if isinstance(op, list):
                self._writes.put(Write(s.symbol, tuple(op)))
            else:
                logger.error(
                    "market {}: the exchange has no candles for {} minute(s) from {} to {}; "
                    "recorded as a hole, not filled",
                    s.symbol,
                    (op[1] - op[0]) // MINUTE_MS + 1,
                    op[0],
                    op[1],
                )
                self._writes.put(Write(s.symbol, hole=op))

    # --- the single writer -------------------------------------------------------------

    async def _writer(self) -> None:
        await self._writes.run()

    def _stored(self, symbol: str, candles: tuple[Candle, ...], added: int) -> None:
        """The store took ``candles``: the track's count, then the listeners."""
        s = self._symbols[symbol]
        s.stored = min(self.settings.max_candles, s.stored + added)
        s.stored_last = candles[-1].open_time_ms
        for listener in self._listeners:
            listener(symbol, s.stored_last)

    def _mark_ready(self, symbol: str) -> None:
        s = self._symbols[symbol]
        s.ready = True
        self._ready[symbol].set()
        logger.debug("market {}: ready ({} candles)", symbol, s.stored)

    # --- status --------------------------------------------------------------------------

    def status(self) -> dict[str, StatusValue]:
        """Flat scalars for /state: totals, one block per connection, one per symbol."""
        return health.status(self)

    async def publish_status(self) -> None:
        await self._state.set_stream_status(STATUS_NAME, self.status())

    async def _status_loop(self) -> None:
        while True:
            try:
                await self.publish_status()
                self.view.refresh()
            except Exception:
                logger.exception("market: status update failed")
            await asyncio.sleep(self.settings.status_interval_s)  # loop seconds: a screen refresh rate

    def summary(self) -> FeedSummary:
        """The few numbers an operator watches (terminal status line)."""
        return health.summary(self)
