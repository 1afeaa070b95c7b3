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
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import msgspec
from loguru import logger

from aegis.binance.clock import ServerClock, TimeSource
from aegis.binance.errors import ParseError
from aegis.binance.parse import parse_kline_frame
from aegis.binance.ws import (
    MAX_STREAMS_PER_CONNECTION,
    ConnectEvent,
    WsConnection,
    market_stream_url,
    split_streams,
)
from aegis.domain import Candle, KlineEvent
from aegis.market.backfill import MINUTE_MS, Backfiller, KlineSource, missing_ranges
from aegis.market.view import FeedSummary, TerminalView
from aegis.state.store import StateStore, StatusValue

if TYPE_CHECKING:
    from aegis.config.schema import Settings

__all__ = ["MarketConfig", "MarketFeed", "decode_frame", "hole_ranges"]

STATUS_NAME: Final = "market"


@dataclass(frozen=True)
class MarketConfig:
    """The feed's settings; ``from_settings`` maps ``Settings.market`` and ``Settings.symbols``."""

    symbols: tuple[str, ...]
    history_candles: int = 1000
    max_candles: int = 5000
    stale_after_s: float = 30.0
    skip_dirty_windows: bool = True
    streams_per_connection: int = MAX_STREAMS_PER_CONNECTION
    # Concurrent REST requests (the governor bounds the weight). Four keep a 300-symbol warm-up
    # near latency-bound on Binance and its burst of parse objects small (bench_footprint).
    max_in_flight: int = 4
    hole_confirm_delay_s: float = 5.0  # a range REST lacks is asked for once more before it is a hole
    repair_retry_s: float = 30.0  # after a REST error retrying cannot fix (bad symbol...)
    status_interval_s: float = 1.0  # wall seconds between /state and terminal refreshes
    terminal: bool | None = None  # progress bar and live status line; None = when stderr is a TTY

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("at least one symbol is required")
        if self.history_candles < 1 or self.max_candles < self.history_candles:
            raise ValueError("need 1 <= history_candles <= max_candles")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> MarketConfig:
        market = settings.market
        values: dict[str, object] = {
            "symbols": tuple(settings.symbols),
            "history_candles": market.history_candles,
            "max_candles": market.max_candles,
            "stale_after_s": market.stale_after_s,
            "skip_dirty_windows": market.skip_dirty_windows,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


# --- the hot path: a light decode for updates, the full typed decode for closed candles ----


class _LightKline(msgspec.Struct, gc=False):
    t: int
    x: bool
    c: str  # kept as text: the last-price view builds a Decimal only when someone reads it


class _LightEvent(msgspec.Struct, gc=False):
    E: int
    s: str
    k: _LightKline


class _LightFrame(msgspec.Struct, gc=False):
    data: _LightEvent


_LIGHT = msgspec.json.Decoder(_LightFrame)


def decode_frame(raw: str | bytes) -> _LightEvent | KlineEvent:
    """An open-candle update as a light struct; a closed candle fully typed (Decimals) by the adapter."""
    try:
        event = _LIGHT.decode(raw).data
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ParseError(f"kline frame: {exc}", raw) from exc
    if event.k.x:
        return parse_kline_frame(raw)
    return event


# --- per-symbol bookkeeping ---------------------------------------------------------------


@dataclass(eq=False)
class _Symbol:
    symbol: str
    connection: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    last_open: int | None = None  # newest open time decided (handed to the store, or a hole's end)
    stored_last: int | None = None  # newest open time the store has confirmed
    stored: int = 0  # candles the store holds (capped at max_candles)
    newest_seen: int | None = None  # newest closed open time the stream delivered
    pending: dict[int, Candle] = field(default_factory=dict)  # closed candles waiting behind a gap
    pending_since: float | None = None
    warmed: bool = False
    catch_up: bool = False
    ready_queued: bool = False
    repair: asyncio.Task[None] | None = None
    holes: list[tuple[int, int]] = field(default_factory=list)
    error: str = ""
    closed: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    already_stored: int = 0
    gaps: int = 0
    backfilled: int = 0


@dataclass(frozen=True, slots=True)
class _Write:
    """One store operation, applied in queue order: candles, a hole, or 'ready' after them."""

    symbol: str
    candles: tuple[Candle, ...] = ()
    hole: tuple[int, int] | None = None
    ready: bool = False


CandleListener = Callable[[str, int], None]


class MarketFeed:
    """The long-lived market task: ``await run()`` under the supervisor (critical, named "market")."""

    def __init__(
        self,
        config: MarketConfig,
        rest: KlineSource,
        ws_url: str,
        state: StateStore,
        clock: TimeSource,
        *,
        server_clock: TimeSource | None = None,
    ) -> None:
        self.config = config
        self._rest = rest
        self._ws_url = ws_url
        self._state = state
        self._clock = clock
        self._server = server_clock or getattr(rest, "server_clock", None) or clock
        self.backfill = Backfiller(rest, self._server, max_in_flight=config.max_in_flight)
        self._symbols = {s: _Symbol(s) for s in config.symbols}
        self._writes: asyncio.Queue[_Write] = asyncio.Queue()
        self._last_price: dict[str, tuple[int, str | Decimal]] = {}
        self._listeners: list[CandleListener] = []
        self._groups = split_streams(
            [f"{s.lower()}@kline_1m" for s in config.symbols], per_connection=config.streams_per_connection
        )
        self._group_symbols: list[list[str]] = [[n.split("@", 1)[0].upper() for n in g] for g in self._groups]
        for index, group in enumerate(self._group_symbols):
            for symbol in group:
                self._symbols[symbol].connection = index
        self.connections: list[WsConnection[_LightEvent | KlineEvent]] = []
        self._down_since: dict[int, float] = {}
        self.updates = 0
        self.unknown_symbol = 0
        self._started = False
        self._view = TerminalView(self.summary, self.backfill.stats, config.terminal)

    # --- public API --------------------------------------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.config.symbols

    def ready_event(self, symbol: str) -> asyncio.Event:
        """Set once the warm-up history of ``symbol`` is in the store and the feed is in step."""
        return self._symbols[symbol].ready

    def is_ready(self, symbol: str) -> bool:
        return self._symbols[symbol].ready.is_set()

    async def wait_ready(self, symbols: tuple[str, ...] | None = None) -> None:
        await asyncio.gather(*(self._symbols[s].ready.wait() for s in symbols or self.config.symbols))

    def in_sync(self, symbol: str) -> bool:
        """Ready, and no gap or reconnect interval is being fetched right now."""
        s = self._symbols[symbol]
        return s.ready.is_set() and s.repair is None and not s.pending

    def window_is_clean(self, symbol: str, length: int) -> bool:
        """The last ``length`` stored candles are consecutive minutes: no hole, nothing pending."""
        s = self._symbols[symbol]
        if length < 1 or not self.in_sync(symbol) or s.stored_last is None or s.stored < length:
            return False
        start = s.stored_last - (length - 1) * MINUTE_MS
        return not s.holes or s.holes[-1][1] < start

    def may_evaluate(self, symbol: str, length: int) -> bool:
        """Whether the strategy may run on the last ``length`` candles (market.skip_dirty_windows)."""
        if self.config.skip_dirty_windows:
            return self.window_is_clean(symbol, length)
        s = self._symbols[symbol]
        return self.in_sync(symbol) and s.stored >= length

    def holes(self, symbol: str) -> tuple[tuple[int, int], ...]:
        return tuple(self._symbols[symbol].holes)

    def last_price(self, symbol: str) -> Decimal | None:
        """Latest traded price from the stream (open-candle updates included); None before any."""
        entry = self._last_price.get(symbol)
        if entry is None:
            return None
        value = entry[1]
        return value if isinstance(value, Decimal) else Decimal(value)

    def add_listener(self, listener: CandleListener) -> None:
        """``listener(symbol, open_time_ms)`` after closed candles of ``symbol`` reached the store."""
        self._listeners.append(listener)

    async def flush(self) -> None:
        """Wait until every decided write has reached the store (tests, shutdown)."""
        await self._writes.join()

    def problems(self) -> list[str]:
        """/health: silent or down connections, symbols not ready, gaps that cannot be fetched."""
        if not self._started:
            return []
        out: list[str] = []
        now = self._clock.monotonic()
        stale = self.config.stale_after_s
        for index, conn in enumerate(self.connections):
            down = self._down_since.get(index)
            if down is not None and now - down > stale:
                out.append(
                    f"market stream {conn.name} down for {now - down:.0f} s ({conn.last_disconnect_reason})"
                )
            elif conn.last_message_at is not None and now - conn.last_message_at > stale:
                out.append(f"market stream {conn.name} silent for {now - conn.last_message_at:.0f} s")
        unready = [s.symbol for s in self._symbols.values() if not s.ready.is_set()]
        if unready:
            out.append(
                f"market: {len(unready)} of {len(self._symbols)} symbols not warmed up ({', '.join(unready[:5])})"
            )
        for s in self._symbols.values():
            if s.error:
                out.append(f"market {s.symbol}: backfill failing: {s.error}")
            elif s.pending_since is not None and now - s.pending_since > 5 * 60:
                out.append(f"market {s.symbol}: {len(s.pending)} closed candles waiting for a gap fill")
        return out

    # --- the task ----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, warm up, then keep every symbol's series complete until cancelled."""
        self._started = True
        await self._sync_server_clock()
        logger.info(
            "market feed: {} symbols on {} connection(s), {} candles of history each",
            len(self._symbols),
            len(self._groups),
            self.config.history_candles,
        )
        self.connections = [self._connection(i, g) for i, g in enumerate(self._groups)]
        tasks = [asyncio.create_task(self._writer(), name="market-writer")]
        tasks += [asyncio.create_task(c.run(), name=f"ws-{c.name}") for c in self.connections]
        tasks.append(asyncio.create_task(self._status_loop(), name="market-status"))
        self._view.warmup_started()
        for s in self._symbols.values():
            s.catch_up = s.warmed  # run() again after a crash: fetch what closed while it was down
            self._kick(s)
        try:
            await asyncio.gather(*tasks)
        finally:
            for s in self._symbols.values():
                if s.repair is not None:
                    s.repair.cancel()
            for task in tasks:
                task.cancel()
            for conn in self.connections:
                with contextlib.suppress(Exception):
                    await conn.close()
            self._view.close()

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

    def _connection(self, index: int, streams: list[str]) -> WsConnection[_LightEvent | KlineEvent]:
        def on_connect(event: ConnectEvent) -> None:
            self._on_connect(index, event)

        def on_disconnect(reason: str) -> None:
            self._down_since.setdefault(index, self._clock.monotonic())

        return WsConnection(
            market_stream_url(self._ws_url, streams),
            decode_frame,
            self.on_message,
            self._clock,
            name=f"market-{index}",
            on_connect=on_connect,
            on_disconnect=on_disconnect,
            stale_after_s=self.config.stale_after_s,
        )

    # --- stream events -----------------------------------------------------------------

    def on_message(self, item: _LightEvent | KlineEvent) -> None:
        """Hot path. Open-candle updates touch one dict; closed candles go to their symbol."""
        if type(item) is _LightEvent:
            previous = self._last_price.get(item.s)
            if previous is None or item.E >= previous[0]:
                self._last_price[item.s] = (item.E, item.k.c)
            self.updates += 1
            return
        assert isinstance(item, KlineEvent)
        candle = item.candle
        previous = self._last_price.get(candle.symbol)
        if previous is None or item.event_time_ms >= previous[0]:
            self._last_price[candle.symbol] = (item.event_time_ms, candle.close)
        self.on_closed(candle)

    def on_closed(self, candle: Candle) -> None:
        """Classify one closed candle from the stream: store it, queue it behind a gap, or drop it."""
        s = self._symbols.get(candle.symbol)
        if s is None:
            self.unknown_symbol += 1
            return
        t = candle.open_time_ms
        if t % MINUTE_MS:
            logger.warning("market {}: closed candle at {} is not on a minute; dropped", s.symbol, t)
            return
        s.closed += 1
        if s.newest_seen is not None and t <= s.newest_seen:
            if t == s.newest_seen:
                s.duplicates += 1
                return
            s.out_of_order += 1
            if (s.last_open is None or t > s.last_open) and t not in s.pending:
                self._queue_pending(s, candle)  # merged by open time with the gap fill
            return
        s.newest_seen = t
        if s.last_open is not None and t <= s.last_open:
            s.already_stored += 1  # REST got there first (reconnect catch-up)
            return
        if s.repair is None and not s.pending and s.last_open is not None and t == s.last_open + MINUTE_MS:
            self._commit(s, [candle])
            return
        self._queue_pending(s, candle)

    def _queue_pending(self, s: _Symbol, candle: Candle) -> None:
        if not s.pending:
            s.pending_since = self._clock.monotonic()
        s.pending[candle.open_time_ms] = candle
        self._kick(s)

    def _on_connect(self, index: int, event: ConnectEvent) -> None:
        self._down_since.pop(index, None)
        if not event.reconnect:
            return
        for symbol in self._group_symbols[index]:
            s = self._symbols[symbol]
            s.catch_up = True
            self._kick(s)

    # --- repair: warm-up, reconnect catch-up, gap fill ---------------------------------

    def _kick(self, s: _Symbol) -> None:
        if s.repair is None:
            s.repair = asyncio.create_task(self._repair(s), name=f"market-repair-{s.symbol}")

    async def _repair(self, s: _Symbol) -> None:
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
                    logger.error(
                        "market {}: {}; retrying in {:.0f} s", s.symbol, s.error, self.config.repair_retry_s
                    )
                    await self._clock.sleep(self.config.repair_retry_s)
        finally:
            s.repair = None  # no await since the last check for work: nothing can slip through

    async def _repair_until_idle(self, s: _Symbol) -> None:
        while True:
            if not s.warmed:
                await self._warm_up(s)
            elif s.catch_up:
                s.catch_up = False
                await self._catch_up(s)
            elif s.pending:
                await self._drain(s)
            else:
                s.pending_since = None
                if not s.ready_queued:
                    s.ready_queued = True
                    self._writes.put_nowait(_Write(s.symbol, ready=True))
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

    async def _warm_up(self, s: _Symbol) -> None:
        await self._fresh_server_time()
        last = self._closed_until()
        first = last - (self.config.history_candles - 1) * MINUTE_MS
        # Nothing before the first candle is "not listed yet", nothing after the last is "not yet":
        # neither is a hole. Only stretches between two real candles can be.
        candles = await self._fetch(s, first, last, leading=False, trailing=False, purpose="warmup")
        self._commit_range(s, candles, first, last, leading=False, trailing=False)
        s.warmed = True
        self._view.symbol_warmed()

    async def _catch_up(self, s: _Symbol) -> None:
        if s.last_open is None:
            return
        await self._fresh_server_time()
        first, last = s.last_open + MINUTE_MS, self._closed_until()
        if last < first:
            return
        candles = await self._fetch(s, first, last, leading=True, trailing=False, purpose="reconnect")
        s.backfilled += len(candles)
        self._commit_range(s, candles, first, last, leading=True, trailing=False)

    async def _drain(self, s: _Symbol) -> None:
        nxt = min(s.pending)
        if s.last_open is not None and nxt <= s.last_open:
            del s.pending[nxt]  # covered by REST meanwhile
            return
        if s.last_open is None or nxt == s.last_open + MINUTE_MS:
            run = []
            while nxt in s.pending:
                run.append(s.pending.pop(nxt))
                nxt += MINUTE_MS
            self._commit(s, run)
            return
        first, last = s.last_open + MINUTE_MS, nxt - MINUTE_MS
        s.gaps += 1
        logger.info(
            "market {}: gap of {} candle(s) before {}; fetching",
            s.symbol,
            (last - first) // MINUTE_MS + 1,
            nxt,
        )
        candles = await self._fetch(s, first, last, leading=True, trailing=True, purpose="gap")
        s.backfilled += len(candles)
        self._commit_range(s, candles, first, last, leading=True, trailing=True)

    async def _fetch(
        self, s: _Symbol, first: int, last: int, *, leading: bool, trailing: bool, purpose: str
    ) -> list[Candle]:
        """REST candles in [first, last], merged with stream candles queued for that range.

        A range the exchange did not return is asked for once more after a pause before it
        can become a hole: REST may lag the stream by a moment.
        """
        # A range that ends before a candle the stream delivered closed is closed, whatever
        # our estimate of server time says.
        proven = last + MINUTE_MS if trailing else None
        fetched = await self.backfill.fetch(s.symbol, first, last, closed_before_ms=proven, purpose=purpose)
        candles = self._merge(s, fetched, first, last)
        gaps = hole_ranges(candles, first, last, leading=leading, trailing=trailing)
        if gaps:
            await self._clock.sleep(self.config.hole_confirm_delay_s)
            for a, b in gaps:
                again = await self.backfill.fetch(s.symbol, a, b, closed_before_ms=proven, purpose="confirm")
                candles = self._merge(s, [*candles, *again], first, last)
        return candles

    @staticmethod
    def _merge(s: _Symbol, candles: list[Candle], first: int, last: int) -> list[Candle]:
        by_open = {c.open_time_ms: c for c in candles}
        for t in [t for t in s.pending if first <= t <= last]:
            by_open.setdefault(t, s.pending.pop(t))
        return [by_open[t] for t in sorted(by_open)]

    def _commit_range(
        self, s: _Symbol, candles: list[Candle], first: int, last: int, *, leading: bool, trailing: bool
    ) -> None:
        """Store ``candles`` in order, each hole recorded just before the candle that follows it."""
        holes = hole_ranges(candles, first, last, leading=leading, trailing=trailing)
        batch: list[Candle] = []
        for candle in candles:
            while holes and holes[0][1] < candle.open_time_ms:
                if batch:
                    self._commit(s, batch)
                    batch = []
                self._hole(s, *holes.pop(0))
            batch.append(candle)
        if batch:
            self._commit(s, batch)
        for hole in holes:
            self._hole(s, *hole)

    def _commit(self, s: _Symbol, candles: list[Candle]) -> None:
        s.last_open = candles[-1].open_time_ms
        self._writes.put_nowait(_Write(s.symbol, tuple(candles)))

    def _hole(self, s: _Symbol, first: int, last: int) -> None:
        n = (last - first) // MINUTE_MS + 1
        logger.error(
            "market {}: the exchange has no candles for {} minute(s) from {} to {}; recorded as a hole, not filled",
            s.symbol,
            n,
            first,
            last,
        )
        s.holes.append((first, last))
        s.last_open = max(s.last_open or last, last)
        self._writes.put_nowait(_Write(s.symbol, hole=(first, last)))

    # --- the single writer -------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            item = await self._writes.get()
            try:
                await self._apply(item)
            except Exception:
                logger.exception("market: store write failed for {}", item.symbol)
            finally:
                self._writes.task_done()

    async def _apply(self, item: _Write) -> None:
        s = self._symbols[item.symbol]
        if item.candles:
            added = await self._state.add_candles(item.symbol, item.candles)
            s.stored = min(self.config.max_candles, s.stored + added)
            s.stored_last = item.candles[-1].open_time_ms
            for listener in self._listeners:
                listener(item.symbol, s.stored_last)
        elif item.hole is not None:
            await self._state.record_hole(item.symbol, *item.hole)
        elif item.ready:
            s.ready.set()
            logger.debug("market {}: ready ({} candles)", item.symbol, s.stored)

    # --- status --------------------------------------------------------------------------

    def status(self) -> dict[str, StatusValue]:
        """Flat scalars for /state: totals, one block per connection, one per symbol."""
        syms = self._symbols.values()
        now = self._clock.monotonic()
        stats = self.backfill.stats
        out: dict[str, StatusValue] = {
            "symbols": len(self._symbols),
            "ready": sum(1 for s in syms if s.ready.is_set()),
            "connections": len(self.connections),
            "connected": sum(1 for c in self.connections if c.connected.is_set()),
            "reconnects": sum(c.reconnects for c in self.connections),
            "messages": sum(c.messages for c in self.connections),
            "updates": self.updates,
            "closed": sum(s.closed for s in syms),
            "parse_errors": sum(c.parse_errors for c in self.connections),
            "duplicates": sum(s.duplicates for s in syms),
            "out_of_order": sum(s.out_of_order for s in syms),
            "already_stored": sum(s.already_stored for s in syms),  # stream repeated what REST gave
            "gaps": sum(s.gaps for s in syms),
            "gaps_backfilled": sum(s.backfilled for s in syms),
            "holes": sum(len(s.holes) for s in syms),
            "pending": sum(len(s.pending) for s in syms),
            "rest_requests": stats.requests,
            "rest_weight": stats.weight,
            "rest_weight_warmup": stats.weight_by_purpose.get("warmup", 0),
            "rest_rate_limited": stats.rate_limited,
            "rest_retries": stats.retries,
        }
        for index, conn in enumerate(self.connections):
            key = f"conn.{conn.name}"
            age = None if conn.last_message_at is None else round(now - conn.last_message_at, 3)
            out[f"{key}.connected"] = conn.connected.is_set()
            out[f"{key}.streams"] = len(self._groups[index])
            out[f"{key}.reconnects"] = conn.reconnects
            out[f"{key}.messages"] = conn.messages
            out[f"{key}.last_message_age_s"] = age
            out[f"{key}.last_disconnect"] = conn.last_disconnect_reason or None
        for s in syms:
            key = f"symbol.{s.symbol}"
            out[f"{key}.ready"] = s.ready.is_set()
            out[f"{key}.last_closed_ms"] = s.stored_last
            out[f"{key}.holes"] = len(s.holes)
            out[f"{key}.duplicates"] = s.duplicates
            out[f"{key}.out_of_order"] = s.out_of_order
            out[f"{key}.gaps"] = s.gaps
            out[f"{key}.gaps_backfilled"] = s.backfilled
            out[f"{key}.reconnects"] = self.connections[s.connection].reconnects if self.connections else 0
            out[f"{key}.error"] = s.error or None
        return out

    async def publish_status(self) -> None:
        await self._state.set_stream_status(STATUS_NAME, self.status())

    async def _status_loop(self) -> None:
        while True:
            try:
                await self.publish_status()
                self._view.refresh()
            except Exception:
                logger.exception("market: status update failed")
            await asyncio.sleep(self.config.status_interval_s)

    def summary(self) -> FeedSummary:
        """The few numbers an operator watches (terminal status line)."""
        syms = self._symbols.values()
        lasts = [s.stored_last for s in syms if s.stored_last is not None]
        return FeedSummary(
            symbols=len(self._symbols),
            ready=sum(1 for s in syms if s.ready.is_set()),
            warmed=sum(1 for s in syms if s.warmed),
            last_closed_ms=min(lasts) if lasts else None,
            holes=sum(len(s.holes) for s in syms),
            reconnects=sum(c.reconnects for c in self.connections),
            pending=sum(len(s.pending) for s in syms),
        )


def hole_ranges(
    candles: list[Candle], first: int, last: int, *, leading: bool, trailing: bool
) -> list[tuple[int, int]]:
    """Stretches of [first, last] that ``candles`` lack and that count as holes.

    Between two candles always; before the first only if a real candle precedes ``first``
    (``leading``); after the last only if a real candle follows ``last`` (``trailing``).
    """
    missing = missing_ranges(candles, first, last)
    if not candles:
        return missing if leading and trailing else []
    oldest, newest = candles[0].open_time_ms, candles[-1].open_time_ms
    return [(a, b) for a, b in missing if (leading or a > oldest) and (trailing or b < newest)]
