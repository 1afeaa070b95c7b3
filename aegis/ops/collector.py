"""The engine's counters, read at scrape time: one custom Prometheus collector.

Components already count what matters (the feed's per-symbol tracks and backfill stats, the user
stream's keeper, the order manager's outcomes, the reconciler's passes, the rate governor, the
server clock, the supervisor). Reading them when Prometheus scrapes costs nothing between scrapes
and cannot drift from what /state shows. Label sets are bounded: symbols come from the
configuration, causes, outcomes, classes and purposes from the code, rejection codes from
Binance's finite list. No label or value ever carries a key, a secret or a URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from aegis import __version__
from aegis.binance.ws import DISCONNECT_CAUSES
from aegis.domain import MINUTE_MS
from aegis.reconcile.diff import Kind
from aegis.trading.intents import Outcome
from aegis.trading.resolve import FateKind

if TYPE_CHECKING:
    from aegis.engine.engine import Engine
    from aegis.ops.looplag import LoopLagMonitor

__all__ = ["EngineCollector"]


def _counter(name: str, doc: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _by(family: CounterMetricFamily | GaugeMetricFamily, counts: Mapping[str, float], keys: Iterable[str] = ()) -> None:
    """One sample per key: the known ``keys`` always (0 until counted), then whatever was counted."""
    for key in dict.fromkeys([*keys, *counts]):
        family.add_metric([str(key)], counts.get(key, 0))


class EngineCollector:
    """Reads an ``Engine`` (whatever parts of it exist yet) on every scrape."""

    def __init__(self, engine: Engine, loop_lag: LoopLagMonitor) -> None:
        self._engine = engine
        self._loop_lag = loop_lag

    def collect(self) -> Iterator[Metric]:
        parts: list[Callable[[], Iterable[Metric]]] = [
            self._engine_part, self._market, self._streams, self._user, self._orders, self._reconcile, self._rest,
        ]  # fmt: skip
        for part in parts:
            yield from part()

    # --- the engine as a whole -----------------------------------------------------------------

    def _engine_part(self) -> Iterator[Metric]:
        e = self._engine
        info = _gauge("aegis_info", "The running engine (always 1).", ["profile", "version"])
        info.add_metric([e.settings.profile, __version__], 1)
        yield info
        problems = e.ops.problems()
        yield GaugeMetricFamily("aegis_healthy", "1 when GET /health answers 200.", value=0 if problems else 1)
        yield GaugeMetricFamily("aegis_health_problems", "Reasons /health gives right now.", value=len(problems))
        yield GaugeMetricFamily(
            "aegis_uptime_seconds", "Exchange seconds since the engine started.", value=(e.clock.now_ms() - e.started_ms) / 1000
        )
        restarts = _counter("aegis_task_restarts", "Restarts of each supervised task after a crash.", ["task"])
        running = _gauge("aegis_task_running", "1 while a supervised task runs.", ["task"])
        for name, task in e.supervisor.tasks.items():
            restarts.add_metric([name], task.restarts)
            running.add_metric([name], 1 if task.running else 0)
        yield restarts
        yield running
        yield GaugeMetricFamily(
            "aegis_event_loop_lag_max_seconds",
            "Worst event-loop lag of the recent window (what /health compares with ops.max_loop_lag_s).",
            value=self._loop_lag.worst_s(),
        )

    # --- market data ---------------------------------------------------------------------------

    def _market(self) -> Iterator[Metric]:
        feed = self._engine.market
        if feed is None:
            return
        received = _counter("aegis_market_candles_received", "Closed 1m candles delivered by the stream.", ["symbol"])
        gaps = _counter("aegis_market_gaps", "Gaps found between closed candles of the stream.", ["symbol"])
        filled = _counter("aegis_market_gap_candles_filled", "Candles fetched over REST into gaps and reconnect intervals.", ["symbol"])
        holes = _counter("aegis_market_holes", "Ranges the exchange could not supply (recorded, never invented).", ["symbol"])
        dropped = _counter("aegis_market_candles_dropped", "Closed candles dropped as duplicates or out of order.", ["symbol", "why"])
        ready = _gauge("aegis_market_symbol_ready", "1 once a symbol is warmed up.", ["symbol"])
        age = _gauge("aegis_market_last_candle_age_seconds", "Exchange seconds since the newest stored candle closed.", ["symbol"])
        now_ms = self._server_now_ms()
        for s in feed.tracks:
            received.add_metric([s.symbol], s.closed)
            gaps.add_metric([s.symbol], s.gaps)
            filled.add_metric([s.symbol], s.backfilled)
            holes.add_metric([s.symbol], len(s.holes))
            dropped.add_metric([s.symbol, "duplicate"], s.duplicates)
            dropped.add_metric([s.symbol, "out_of_order"], s.out_of_order)
            ready.add_metric([s.symbol], 1 if s.ready else 0)
            if s.stored_last is not None:
                age.add_metric([s.symbol], max(0.0, (now_ms - s.stored_last - MINUTE_MS) / 1000))
        yield from (received, gaps, filled, holes, dropped, ready, age)
        stats = feed.backfill.stats
        yield CounterMetricFamily("aegis_market_backfill_candles", "Candles fetched over REST (warm-up and repairs).", value=stats.candles)
        yield CounterMetricFamily("aegis_market_backfill_requests", "REST kline requests.", value=stats.requests)
        weight = _counter("aegis_market_backfill_weight", "REST weight spent on klines, by purpose.", ["purpose"])
        _by(weight, stats.weight_by_purpose, ("warmup", "gap", "reconnect", "confirm"))
        yield weight

    def _server_now_ms(self) -> int:
        rest = self._engine.rest
        return rest.server_clock.now_ms() if rest is not None else self._engine.clock.now_ms()

    # --- WebSocket streams ---------------------------------------------------------------------

    def _streams(self) -> Iterator[Metric]:
        """One family per name, with a ``stream`` label: market and user."""
        connections = _gauge("aegis_stream_connections", "WebSocket connections of a stream, by state.", ["stream", "state"])
        disconnects = _counter("aegis_stream_disconnects", "Stream disconnects (each followed by a reconnect), by cause.", ["stream", "cause"])
        parse_errors = _counter("aegis_stream_parse_errors", "Frames that could not be parsed (logged, skipped).", ["stream"])
        frames = _counter("aegis_stream_frames", "Frames received, every kline update included (the load a stream puts on the loop).", ["stream"])
        feed, user = self._engine.market, self._engine.user
        if feed is not None:
            up = sum(1 for c in feed.connections if c.connected.is_set())
            connections.add_metric(["market", "up"], up)
            connections.add_metric(["market", "down"], len(feed.connections) - up)
            _by_stream(disconnects, "market", feed.disconnects, DISCONNECT_CAUSES)
            parse_errors.add_metric(["market"], feed.bad_candles + sum(c.parse_errors for c in feed.connections))
            frames.add_metric(["market"], sum(c.messages for c in feed.connections))
        if user is not None:
            up = 1 if user.status()["connected"] else 0
            connections.add_metric(["user", "up"], up)
            connections.add_metric(["user", "down"], 1 - up)
            _by_stream(disconnects, "user", user.disconnects, DISCONNECT_CAUSES)
            parse_errors.add_metric(["user"], user.parse_errors)
        yield from (connections, disconnects, parse_errors, frames)

    # --- the user data stream ------------------------------------------------------------------

    def _user(self) -> Iterator[Metric]:
        user = self._engine.user
        if user is None:
            return
        keeper = user.keeper
        now_ms = self._engine.clock.now_ms()
        yield CounterMetricFamily("aegis_listenkey_keepalives", "Successful listenKey keepalives (PUT).", value=keeper.keepalives)
        yield CounterMetricFamily("aegis_listenkey_created", "listenKeys obtained (first, renewals after expiry).", value=keeper.keys_created)
        yield CounterMetricFamily("aegis_user_stream_rotations", "Connections replaced before Binance's 24 h cut.", value=user.rotations)
        yield GaugeMetricFamily(
            "aegis_listenkey_keepalive_failures", "Consecutive failed keepalives (0 when the last succeeded).", value=keeper.keepalive_failures
        )
        keepalive_age = _gauge("aegis_listenkey_keepalive_age_seconds", "Exchange seconds since the key was last created or kept alive.")
        if keeper.last_ok_ms is not None:
            keepalive_age.add_metric([], (now_ms - keeper.last_ok_ms) / 1000)
        yield keepalive_age
        yield CounterMetricFamily("aegis_user_events", "User data events received.", value=user.events)
        event_age = _gauge("aegis_user_event_age_seconds", "Exchange seconds since the last user data event.")
        if user.last_event_ms is not None:
            event_age.add_metric([], (now_ms - user.last_event_ms) / 1000)
        yield event_age

    # --- orders --------------------------------------------------------------------------------

    def _orders(self) -> Iterator[Metric]:
        e = self._engine
        trader = e.trader
        if trader is None:
            return
        o = trader.orders
        outcomes = _counter("aegis_orders", "Intents by what became of their order.", ["outcome"])
        _by(outcomes, o.outcomes, [str(x) for x in Outcome])
        rejections = _counter("aegis_order_rejections", "Orders the exchange rejected, by Binance error code.", ["code"])
        _by(rejections, {str(code): n for code, n in o.rejections.items()})
        refusals = _counter("aegis_order_refusals", "Orders refused before sending, by filter or risk limit.", ["reason"])
        _by(refusals, o.refusals)
        unknown = _counter("aegis_order_unknown_outcomes", "Orders whose outcome was unknown, by how it resolved.", ["resolution"])
        _by(unknown, o.unknown, [*(str(k) for k in FateKind), "duplicate"])
        yield from (outcomes, rejections, refusals, unknown)
        yield CounterMetricFamily("aegis_order_retries", "Orders sent again with the same client id after a retryable error.", value=o.retries)
        yield GaugeMetricFamily("aegis_trading_halted", "1 while reconciliation halted new orders.", value=1 if trader.risk.halt.engaged else 0)
        yield GaugeMetricFamily("aegis_kill_switch_engaged", "1 while the kill switch is engaged.", value=1 if trader.risk.kill.engaged else 0)
        runner = e.runner
        if runner is not None:
            yield CounterMetricFamily("aegis_strategy_evaluations", "Closed candles the strategy evaluated.", value=runner.evaluations)
            yield CounterMetricFamily("aegis_strategy_errors", "Strategy calls that raised (candle skipped).", value=runner.errors)
            skipped = _counter("aegis_strategy_skipped", "Closed candles not evaluated, by why.", ["why"])
            skipped.add_metric(["dirty_window"], runner.skipped_dirty)
            skipped.add_metric(["not_ready"], runner.skipped_not_ready)
            yield skipped

    # --- reconciliation ------------------------------------------------------------------------

    def _reconcile(self) -> Iterator[Metric]:
        rec = self._engine.reconciler
        if rec is None:
            return
        passes = _counter("aegis_reconcile_passes", "Reconciliation passes by result.", ["result"])
        _by(passes, rec.results, ("clean", "mismatch", "error"))
        mismatches = _counter("aegis_reconcile_mismatches", "Mismatches found, by class.", ["kind"])
        _by(mismatches, rec.mismatches, [str(k) for k in Kind])
        yield from (passes, mismatches)
        since = rec.last_clean_ms if rec.last_clean_ms is not None else self._engine.started_ms
        yield GaugeMetricFamily(
            "aegis_reconcile_last_clean_age_seconds",
            "Exchange seconds since the last clean pass (since start-up before the first).",
            value=(self._engine.clock.now_ms() - since) / 1000,
        )
        yield GaugeMetricFamily("aegis_reconcile_consecutive_failures", "Failed passes in a row.", value=rec.failures)

    # --- REST: budget, bans, clock -------------------------------------------------------------

    def _rest(self) -> Iterator[Metric]:
        rest = self._engine.rest
        if rest is None:
            return
        gov = rest.governor
        orders_10s, orders_1m = gov.order_counts
        budget = _gauge("aegis_rest_budget_used", "Request weight and order counts in the current window.", ["budget"])
        limit = _gauge("aegis_rest_budget_limit", "Binance's limit of each budget (from exchangeInfo).", ["budget"])
        for name, used, cap in (
            ("weight_1m", gov.used_weight, gov.limits.weight_per_minute),
            ("orders_10s", orders_10s, gov.limits.orders_per_10s),
            ("orders_1m", orders_1m, gov.limits.orders_per_minute),
        ):
            budget.add_metric([name], used)
            limit.add_metric([name], cap)
        yield from (budget, limit)
        limited = _counter("aegis_rest_rate_limited", "429 (rate limit) and 418 (IP ban) answers.", ["status"])
        _by(limited, {str(k): n for k, n in rest.transport.rate_limited.items()}, ("429", "418"))
        yield limited
        yield CounterMetricFamily("aegis_rest_pauses", "Times all REST was paused (429, 418).", value=gov.pauses)
        paused_s = max(0.0, (gov.paused_until_ms - rest.server_clock.clock.now_ms()) / 1000)
        yield GaugeMetricFamily("aegis_rest_paused_seconds", "Exchange seconds left of a REST pause or ban (0: none).", value=paused_s)
        clock = rest.server_clock
        yield GaugeMetricFamily("aegis_clock_offset_seconds", "Exchange clock minus this host's (measured).", value=clock.offset_ms / 1000)
        trip = _gauge("aegis_clock_round_trip_seconds", "Round trip of the time request the offset came from.")
        if clock.round_trip_ms is not None:
            trip.add_metric([], clock.round_trip_ms / 1000)
        yield trip


def _by_stream(family: CounterMetricFamily, stream: str, counts: Mapping[str, int], keys: Iterable[str]) -> None:
    for key in dict.fromkeys([*keys, *counts]):
        family.add_metric([stream, key], counts.get(key, 0))
