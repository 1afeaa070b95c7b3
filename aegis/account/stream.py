"""The user data stream task: the account's orders, fills, positions and balances, never lost silently.

Peers lose this stream in known ways (shared/peers.md section 2): a new key fetched while the
socket stays on the old one, ``listenKeyExpired`` unhandled, no rotation before the 24-hour
cut, no detector for a connected-but-silent socket, no reconciliation after a gap. Here:

* ``ListenKeyKeeper`` keeps the key alive and declares it dead on -1125 or after 60 minutes
  without a successful keepalive; the connection then moves to a fresh key.
* Every disconnect (server close, network error, missing pong, listenKeyExpired) is followed
  by POST listenKey (same key if still alive, else a new one) and a jittered, capped
  exponential backoff reconnect by ``WsConnection``; every reconnect requests a reconciliation,
  because events sent while we were away are gone for good.
* Before Binance's 24-hour cut the connection is rotated: the new one is opened first, the old
  one closed after an overlap; events seen on both are applied once (``UserEventApplier``).
* Silence longer than ``silence_threshold_s`` triggers a cheap REST cross-check; if the
  exchange disagrees with the store, a reconciliation is requested and the connection is
  pinged: no pong (half-open) reconnects at once, a live one that still misses changes a
  silence period later is reconnected too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Protocol

from loguru import logger

from aegis.account import frames, health, silence
from aegis.account.applier import UserEventApplier
from aegis.account.listenkey import ListenKeyApi, ListenKeyKeeper
from aegis.backoff import backoff_delay
from aegis.binance.ws import ConnectEvent, WsConnection, disconnect_cause, user_stream_url
from aegis.clock import Clock
from aegis.config import UserStreamSettings
from aegis.domain import ListenKeyExpired, OrderUpdate, TradeLite, UserEvent
from aegis.reconcile.reconciler import AccountSource, ServerTime
from aegis.reconcile.requests import ReconcileRequests
from aegis.redact import key_prefix, redact
from aegis.state import StateStore, StatusValue

__all__ = ["UserStream", "UserStreamRest"]

STATUS_NAME = "user"
# Binance sends an order's TRADE_LITE just before its ORDER_TRADE_UPDATE NEW (the same burst): a fill
# whose order is still unknown half a second later had its order's events lost. Longer only delays
# the pass (it was 2 s, the larger part of the 4 s this trigger took to report a divergence).
UNKNOWN_FILL_GRACE_S = 0.5


class UserStreamRest(ListenKeyApi, AccountSource, Protocol):
    """What the stream needs from the REST facade (``aegis.binance.BinanceRest`` fits)."""




class _Link:
    """One WebSocket connection on the stream, and what we learned about it."""

    def __init__(self, conn: WsConnection[UserEvent | None], serial: int) -> None:
        self.conn = conn
        self.serial = serial
        self.task: asyncio.Task[None] | None = None
        self.connected_since_ms: int | None = None


class UserStream:
    """The supervised task "user": ``await run()`` until cancelled, ``await close()`` on shutdown.

    Reading: ``problems()`` for /health, ``status()`` (also published to the store as stream
    "user"), ``applier`` (fills, algo orders, counters), ``reconcile`` (the request channel).
    """

    def __init__(
        self,
        rest: UserStreamRest,
        ws_url: str,
        state: StateStore,
        clock: Clock,
        *,
        keepalive_interval_s: float = 1800.0,
        rotate_after_s: float = 23 * 3600.0,
        silence_threshold_s: float = 300.0,
        ping_interval_s: float = 60.0,
        reconcile: ReconcileRequests | None = None,
        reconcile_on_first_connect: bool = True,
        disconnected_problem_after_s: float = 60.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        rotation_overlap_s: float = 5.0,
        tick_s: float = 10.0,
        min_wall_tick_s: float = 0.05,
        connect_timeout_s: float = 10.0,
        server_time: ServerTime | None = None,
    ) -> None:
        self._rest = rest
        self._server_time: ServerTime = server_time or getattr(rest, "server_clock", None) or clock
        self._ws_url = ws_url
        self._state = state
        self._clock = clock
        self.rotate_after_s = rotate_after_s
        self.silence_threshold_s = silence_threshold_s
        self.ping_interval_s = ping_interval_s
        self.disconnected_problem_after_s = disconnected_problem_after_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.rotation_overlap_s = rotation_overlap_s
        self.tick_s = tick_s
        self.min_wall_tick_s = min_wall_tick_s
        self.connect_timeout_s = connect_timeout_s
        self._reconcile_on_first_connect = reconcile_on_first_connect
        self.reconcile = reconcile or ReconcileRequests(clock.now_ms)
        self.keeper = ListenKeyKeeper(rest, clock, keepalive_interval_s=keepalive_interval_s)
        self.applier = UserEventApplier(state)
        self._queue: asyncio.Queue[UserEvent] = asyncio.Queue()
        self._link: _Link | None = None
        self._links = 0
        self._wake = asyncio.Event()
        self._acquire_lock = asyncio.Lock()
        self._closing = False
        self._helpers: list[asyncio.Task[None]] = []
        self._need_key: str | None = None  # why a new key is needed, until one is acquired
        self._key_failures = 0
        self._next_key_attempt_ms = 0
        self._next_rotation_attempt_ms = 0
        self._down_since_ms: int | None = clock.now_ms()
        self._last_activity_ms: int | None = None
        self._last_crosscheck_ms: int | None = None
        self.crosscheck_diffs: list[str] = []
        self._crosscheck_strikes = 0
        # figures for status()
        self.events = 0
        self.apply_errors = 0
        self.parse_errors = 0
        self.unknown_events = 0
        self.last_event_ms: int | None = None
        self.connects = 0
        self.reconnects = 0
        self.rotations = 0
        self.disconnects: Counter[str] = Counter()  # by ws.disconnect_cause (metrics)
        self.crosschecks = 0
        self.last_disconnect_reason = ""

    @classmethod
    def from_settings(
        cls,
        settings: UserStreamSettings,
        rest: UserStreamRest,
        ws_url: str,
        state: StateStore,
        clock: Clock,
        reconcile: ReconcileRequests | None = None,
    ) -> UserStream:
        """The engine's way to build it: ``[user_stream]`` settings, the REST facade, the WS base URL."""
        return cls(
            rest,
            ws_url,
            state,
            clock,
            keepalive_interval_s=settings.keepalive_interval_s,
            rotate_after_s=settings.rotate_after_s,
            silence_threshold_s=settings.silence_threshold_s,
            ping_interval_s=settings.ping_interval_s,
            reconcile=reconcile,
        )

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the stream alive until cancelled. Exchange trouble never ends it; bugs do, loudly."""
        self._closing = False
        self._helpers = [
            asyncio.create_task(self._consume(), name="user-events"),
            asyncio.create_task(self.keeper.run(self._on_key_gone), name="user-keepalive"),
        ]
        try:
            await self._supervise()
        finally:
            for task in self._helpers:
                task.cancel()
            for task in self._helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._helpers = []
            await self._drop_link()

    async def close(self) -> None:
        """Shutdown: close the connection and DELETE the listenKey (bounded; errors are logged)."""
        self._closing = True
        self._wake.set()
        await self._drop_link()
        try:
            await asyncio.wait_for(self.keeper.close(), timeout=5.0)
        except TimeoutError:
            logger.warning("listenKey close timed out")
        await self._publish_status()

    # --- the supervisor loop --------------------------------------------------------------

    async def _supervise(self) -> None:
        while not self._closing:
            self._check_helpers()
            now = self._clock.now_ms()
            link = self._link
            if link is None or (link.task is not None and link.task.done()):
                await self._open_link()
            elif (
                self.keeper.key is None
                and link.connected_since_ms is None
                and not self._acquire_lock.locked()
            ):
                await self._drop_link()  # it is dialling a dead key; a new link comes with a new key
            elif self._need_key is not None and now >= self._next_key_attempt_ms:
                await self._renew_key(link)
            elif self._rotation_due(link, now):
                await self._rotate(link)
            elif silence.due(self, now):
                await silence.crosscheck(self)
            await self._publish_status()
            await self._sleep_until_due()

    def _check_helpers(self) -> None:
        """The consumer and the keepalive loop never end on their own: if one did, crash loudly."""
        for task in self._helpers:
            if task.done():
                error = None if task.cancelled() else task.exception()
                raise RuntimeError(f"user stream task {task.get_name()} ended") from error

    def _next_due_ms(self) -> int:
        """When the loop has something to check next (a wake-up comes earlier for events)."""
        now = self._clock.now_ms()
        due = [now + int(self.tick_s * 1000)]  # status refresh for /state
        link = self._link
        if link is None or self._need_key is not None:
            due.append(self._next_key_attempt_ms)
        if link is not None and link.connected_since_ms is not None:
            due.append(max(self._next_rotation_attempt_ms, link.connected_since_ms + int(self.rotate_after_s * 1000)))
            last = max(self._last_activity_ms or 0, self._last_crosscheck_ms or 0)
            due.append(last + int(self.silence_threshold_s * 1000))
        return min(due)

    async def _sleep_until_due(self) -> None:
        """Sleep until the next check is due or something wakes the loop (a connect, a lost key)."""
        self._wake.clear()
        wait_s = self._clock.wall_seconds((self._next_due_ms() - self._clock.now_ms()) / 1000)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(self.min_wall_tick_s, wait_s))

    async def _open_link(self) -> None:
        """Create the connection: at start, after a dead key was dropped, or if its task ended."""
        if self._clock.now_ms() < self._next_key_attempt_ms:
            return
        if self._link is not None:
            logger.error("user stream connection task ended unexpectedly; replacing it")
            await self._drop_link()
        key = await self._try_acquire()
        if key is None:
            return
        self._need_key = None
        self._link = self._start_link(key)

    async def _renew_key(self, link: _Link) -> None:
        """The key died while the connection object lives: move it to a fresh key now."""
        reason = self._need_key or "new key"
        key = await self._try_acquire()
        if key is None:
            return
        self._need_key = None
        url = user_stream_url(self._ws_url, key)
        if link.conn.url != url:
            link.conn.set_url(url, reconnect=True)
            logger.info("user stream moving to listenKey {} ({})", key_prefix(key), reason)

    async def _try_acquire(self) -> str | None:
        """POST listenKey with backoff between failures (the supervisor loop retries)."""
        try:
            async with self._acquire_lock:
                key = await self.keeper.acquire()
        except Exception as exc:  # ExchangeError, or anything the transport let through
            self._key_failures += 1
            delay = backoff_delay(self._key_failures, self.backoff_initial_s, self.backoff_max_s)
            self._next_key_attempt_ms = self._clock.now_ms() + int(delay * 1000)
            logger.warning("listenKey could not be obtained ({} in a row): {}", self._key_failures, exc)
            return None
        self._key_failures = 0
        self._next_key_attempt_ms = 0
        return key

    # --- connections --------------------------------------------------------------------

    def _start_link(self, key: str) -> _Link:
        self._links += 1

        def on_connect(event: ConnectEvent) -> None:
            self._on_connect(link, event)

        async def on_disconnect(reason: str) -> None:
            await self._on_disconnect(link, reason)

        conn: WsConnection[UserEvent | None] = WsConnection(
            user_stream_url(self._ws_url, key),
            self._decode,
            self._on_message,
            self._clock,
            name=f"user#{self._links}",
            on_connect=on_connect,
            on_disconnect=on_disconnect,
            stale_after_s=None,  # an idle account is silent; silence is checked against REST instead
            # Our pings find a dead TCP path. On a fast test clock keep them >= 10 wall seconds apart,
            # so a busy loop is not mistaken for a dead peer (aiohttp waits half of it for the pong).
            ping_interval_s=max(self.ping_interval_s, 10.0 * self._clock.speed) if self.ping_interval_s else None,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            max_lifetime_s=None,  # rotation with overlap is ours, see _rotate
            connect_timeout_s=self.connect_timeout_s,
        )
        link = _Link(conn, self._links)
        link.task = conn.start()
        link.task.add_done_callback(lambda _: self._wake.set())  # a dead connection task is noticed at once
        return link

    async def _drop_link(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.conn.close()

    def _on_connect(self, link: _Link, event: ConnectEvent) -> None:
        now = self._clock.now_ms()
        link.connected_since_ms = now
        self._last_activity_ms = now
        if link is not self._link:
            return  # a rotation candidate: the old link is still authoritative until the swap
        down_since, self._down_since_ms = self._down_since_ms, None
        self.connects += 1
        if event.reconnect or self.connects > 1:
            self.reconnects += 1
            why = redact(event.reason or self.last_disconnect_reason or "a disconnect")
            down_s = (now - down_since) / 1000 if down_since is not None else event.down_s
            self.reconcile.request("user stream", f"reconnected after {why} (down {down_s:.1f} s)")
        elif self._reconcile_on_first_connect:
            self.reconcile.request("user stream", "connected: events before this moment are unknown")
        logger.info("user stream connected on {} (connection #{})", key_prefix(self.keeper.key), link.serial)
        self._wake.set()

    async def _on_disconnect(self, link: _Link, reason: str) -> None:
        """Before the connection reconnects: make sure it will use a live key."""
        link.connected_since_ms = None
        if link is not self._link or self._closing:
            return
        self._down_since_ms = self._clock.now_ms()
        self.disconnects[disconnect_cause(reason)] += 1
        self.last_disconnect_reason = redact(reason)
        logger.warning("user stream disconnected: {}", self.last_disconnect_reason)
        key = await self._try_acquire()
        if key is not None:
            self._need_key = None
            link.conn.set_url(user_stream_url(self._ws_url, key), reconnect=False)
        else:
            self._need_key = self._need_key or "no key after a disconnect"
            if self.keeper.key is None:  # known dead: do not let it dial the old key
                self._link = None
                await link.conn.close()
        self._wake.set()

    def _on_key_gone(self, reason: str) -> None:
        """The keeper lost the key (-1125, or 60 minutes without keepalive): reconnect on a new one."""
        self._need_key = reason
        self._next_key_attempt_ms = 0
        link = self._link
        if link is not None:
            link.conn.reconnect(f"listenKey gone: {reason}")
        self._wake.set()

    # --- rotation -----------------------------------------------------------------------

    def _rotation_due(self, link: _Link, now_ms: int) -> bool:
        """Binance cuts each connection 24 h after it opened; ours is replaced before that."""
        since = link.connected_since_ms
        if since is None or now_ms < self._next_rotation_attempt_ms:
            return False
        return now_ms - since >= self.rotate_after_s * 1000

    async def _rotate(self, old: _Link) -> None:
        """Open a new connection, overlap, then close the old one: no window without a reader."""
        key = await self._try_acquire()
        if key is None:
            return
        new = self._start_link(key)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(new.conn.connected.wait(), self.connect_timeout_s)
        if not new.conn.connected.is_set() or self._closing:
            logger.warning("user stream rotation: new connection did not open; keeping the old one")
            await new.conn.close()
            self._next_rotation_attempt_ms = self._clock.now_ms() + 60_000
            return
        # Events published before the new connection registered are still in flight on the old.
        await asyncio.sleep(max(0.25, self._clock.wall_seconds(self.rotation_overlap_s)))
        if new.connected_since_ms is None or self._closing:
            logger.warning(
                "user stream rotation: new connection dropped during the overlap; keeping the old one"
            )
            await new.conn.close()
            self._next_rotation_attempt_ms = self._clock.now_ms() + 60_000
            return
        self._link = new
        self.rotations += 1
        logger.info(
            "user stream rotated: connection #{} replaces #{} before the 24 h cut", new.serial, old.serial
        )
        self.reconcile.request("user stream", "rotated to a new connection")
        await old.conn.close()

    # --- events -------------------------------------------------------------------------

    def _decode(self, raw: str | bytes) -> UserEvent | None:
        """Parse a frame; malformed or unknown ones are logged with the payload, counted, skipped."""
        event, verdict = frames.decode(raw)
        if verdict == "malformed":
            self.parse_errors += 1
        elif verdict == "unknown":
            self.unknown_events += 1
        return event

    def _on_message(self, event: UserEvent | None) -> None:
        self._last_activity_ms = self._clock.now_ms()
        if event is not None:
            self._queue.put_nowait(event)

    async def _consume(self) -> None:
        while True:
            event = await self._queue.get()
            self.events += 1
            self.last_event_ms = self._clock.now_ms()
            if isinstance(event, ListenKeyExpired):
                self._on_listen_key_expired(event)
                continue
            try:
                await self.applier.apply(event)
                self._check_fill_order(event)
            except Exception as exc:  # a bug must not stop every later event from being applied
                self.apply_errors += 1
                logger.opt(exception=exc).error("user event could not be applied: {!r}", event)
                self.reconcile.request("user stream", f"an event could not be applied ({type(exc).__name__})")

    def _check_fill_order(self, event: UserEvent) -> None:
        """A fill for an order the engine does not know (the order's own events lost?): if it is still
        unknown a moment later (TRADE_LITE comes before the order's NEW), ask for a reconciliation."""
        fill = event.fill if isinstance(event, OrderUpdate | TradeLite) else None
        if fill is None or self._state.order_by_id(fill.symbol, fill.order_id) is not None:
            return

        def check() -> None:
            if self._state.order_by_id(fill.symbol, fill.order_id) is None:
                self.reconcile.request("user stream", f"a fill of order {fill.order_id} ({fill.symbol}) the engine does not know")

        asyncio.get_running_loop().call_later(self._clock.wall_seconds(UNKNOWN_FILL_GRACE_S), check)

    def _on_listen_key_expired(self, event: ListenKeyExpired) -> None:
        if event.listen_key != self.keeper.key:
            logger.info("listenKeyExpired for the previous key {} ignored", key_prefix(event.listen_key))
            return
        self.keeper.invalidate("listenKeyExpired received")
        self._on_key_gone("listenKeyExpired received")

    # --- health -------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Why the account view may be wrong right now (for /health); empty when all is well."""
        return health.problems(self)

    def status(self) -> dict[str, StatusValue]:
        """Flat scalars for /state: connection, key, keepalive, events, reconnects, rotations."""
        return health.status(self)

    async def _publish_status(self) -> None:
        await self._state.set_stream_status(STATUS_NAME, self.status())
