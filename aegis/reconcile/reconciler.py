"""The reconciler: the exchange is the source of truth, and divergence is found within seconds.

A pass takes a REST snapshot of positions, open orders, open algo orders and balances (at the least
weight that covers the engine's symbols), compares it with the store (``aegis.reconcile.diff``),
looks again after ``recheck_delay_s`` before acting on a mismatch (the exchange's REST views lag
each other by moments), then applies the policy of each mismatch class: log it, adopt the
exchange's value, or adopt and halt new orders until an operator clears the halt. Every pass ends
in a ``Report``: one log line when clean, every mismatch otherwise, kept in the journal.

Passes run at start-up, whenever something may have been missed (a stream reconnect or key
rotation, an order with an unknown outcome, a fill for an order the engine does not know, a
silent stream that REST contradicts, POST /reconcile), coalesced, and every ``interval_s`` as a
backstop. Stream events keep being applied while a snapshot is in flight: the store's as-of fence,
not a lock held across the requests, keeps an older snapshot from undoing a newer event.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Protocol

from loguru import logger

from aegis.binance.errors import ExchangeError
from aegis.clock import TimeSource
from aegis.config import ReconcileSettings
from aegis.domain import AlgoOrder, Balance, Order, Position
from aegis.reconcile.diff import Kind, Mismatch, diff
from aegis.reconcile.report import Finding, Report
from aegis.reconcile.requests import ReconcileRequests
from aegis.state import AccountSnapshot, StateStore

__all__ = ["AS_OF_MARGIN_MS", "AccountSource", "Reconciler", "ServerTime", "fetch_snapshot"]

# Stream events stamped up to this long before the snapshot may already be in it; applying them
# again is harmless (every write is idempotent), missing one is not.
AS_OF_MARGIN_MS = 1_000
# openOrders / openAlgoOrders cost 1 with a symbol and 40 without: per symbol is cheaper up to here.
_PER_SYMBOL_UP_TO = 39

OursTest = Callable[[str], bool]
ReportSink = Callable[[Report], Awaitable[None] | None]
# The PnL check (aegis.reconcile.pnl.PnlAuditor): given exchange now, the lines that differ.
PnlCheck = Callable[[int], Awaitable[tuple[str, ...]]]
# Passes that also compare realized PnL and fees with the exchange's income history (weight 30+).
_PNL_SOURCES = ("periodic", "ops: ")


class AccountSource(Protocol):
    """The REST calls a snapshot needs (``aegis.binance.BinanceRest`` has them)."""

    async def open_orders(self, symbol: str | None = None) -> list[Order]: ...

    async def open_algo_orders(self, symbol: str | None = None) -> list[AlgoOrder]: ...

    async def positions(self, symbol: str | None = None) -> list[Position]: ...

    async def balances(self) -> list[Balance]: ...


class ServerTime(Protocol):
    def now_ms(self) -> int: ...


async def fetch_snapshot(
    rest: AccountSource, server_time: ServerTime, symbols: Sequence[str] | None = None
) -> AccountSnapshot:
    """The exchange's account, stamped with an exchange time taken before the first request (the
    server clock is measured first: one GET /fapi/v1/time, weight 1).

    Positions and balances cover the whole account (one request each, weight 5); open orders and
    algo orders cover ``symbols`` one request each while that is cheaper than asking for all (40).
    """
    sync = getattr(server_time, "sync", None)
    if sync is not None:  # the fence is only as good as the estimate of exchange time: measure it now
        await sync()
    as_of = server_time.now_ms() - AS_OF_MARGIN_MS
    if symbols is not None and len(symbols) <= _PER_SYMBOL_UP_TO:
        order_lists = await asyncio.gather(*(rest.open_orders(s) for s in symbols))
        algo_lists = await asyncio.gather(*(rest.open_algo_orders(s) for s in symbols))
        orders = [o for group in order_lists for o in group]
        algos = [a for group in algo_lists for a in group]
        positions, balances = await asyncio.gather(rest.positions(), rest.balances())
    else:
        orders, algos, positions, balances = await asyncio.gather(
            rest.open_orders(), rest.open_algo_orders(), rest.positions(), rest.balances()
        )
    return AccountSnapshot(as_of, tuple(positions), tuple(orders), tuple(algos), tuple(balances))


class Reconciler:
    """The long-lived "reconcile" task (see the module docstring)."""

    def __init__(
        self,
        rest: AccountSource,
        server_time: ServerTime,
        state: StateStore,
        requests: ReconcileRequests,
        clock: TimeSource,
        settings: ReconcileSettings | None = None,
        *,
        symbols: Sequence[str] | None = None,
        is_ours: OursTest | None = None,
        halt: Callable[[str], None] | None = None,
        on_report: ReportSink | None = None,
        cancel_foreign: Callable[[Order], Awaitable[None]] | None = None,
        pnl: PnlCheck | None = None,
    ) -> None:
        self._rest = rest
        self._server_time = server_time
        self._state = state
        self._requests = requests
        self._clock = clock
        self.settings = settings or ReconcileSettings()
        self._symbols = list(symbols) if symbols is not None else None
        self._is_ours = is_ours or (lambda cid: True)
        self._halt = halt
        self._on_report = on_report
        self._cancel_foreign = cancel_foreign
        self._pnl = pnl
        # Fills the stream missed (aegis.reconcile.fills.MissedFills.catch_up), fetched every pass.
        self.catch_up: Callable[[], Awaitable[int]] | None = None
        self.runs = 0
        self.corrections = 0
        self.failures = 0  # consecutive
        self.results: Counter[str] = Counter()  # passes by result: clean, mismatch, error (metrics)
        self.mismatches: Counter[str] = Counter()  # findings by class (metrics)
        self.last_report: Report | None = None
        self.last_error: str | None = None
        self.last_ok_ms: int | None = None
        self.last_clean_ms: int | None = None
        self._started_ms: int | None = None
        self._passes = 0  # finished passes, clean or not
        self._in_pass = False
        self._passed = asyncio.Condition()
        self._watchers: list[Callable[[Report], None]] = []

    def watch(self, callback: Callable[[Report], None]) -> None:
        """Also hand every report to ``callback`` as it comes out (a benchmark timing detection):
        ``last_report`` alone misses a report that another replaces at the same instant."""
        self._watchers.append(callback)

    @property
    def max_age_s(self) -> float:
        return self.settings.max_age_s

    async def run(self) -> None:
        self._started_ms = self._clock.now_ms()
        reason = "start-up"
        while True:
            report = await self.reconcile(reason)
            if report.error is not None:
                await self._clock.sleep(self.settings.retry_s)
                continue
            reason = await self._next_reason()

    async def _next_reason(self) -> str:
        """Wait for requests (coalesced) or the periodic backstop, whichever comes first."""
        try:
            taken = await asyncio.wait_for(self._requests.wait(), self._clock.wall_seconds(self.settings.interval_s))
        except TimeoutError:
            return "periodic"
        return "; ".join(dict.fromkeys(f"{r.source}: {r.reason}" for r in taken))

    async def pass_now(self, source: str, reason: str) -> Report:
        """Ask for a pass and wait for its report (POST /reconcile; ``aegis reconcile --once`` asks a
        running engine this way instead of competing with it)."""
        async with self._passed:
            target = self._passes + (2 if self._in_pass else 1)
            self._requests.request(source, reason)
            await self._passed.wait_for(lambda: self._passes >= target)
        assert self.last_report is not None
        return self.last_report

    async def reconcile(self, reason: str) -> Report:
        """One pass: snapshot, compare (and compare again), act by policy, report."""
        self._in_pass = True
        try:
            return await self._reconcile(reason)
        finally:
            self._in_pass = False
            async with self._passed:
                self._passes += 1
                self._passed.notify_all()

    async def _reconcile(self, reason: str) -> Report:
        now = self._clock.now_ms()
        try:
            snapshot = await fetch_snapshot(self._rest, self._server_time, self._symbols)
            found = diff(self._state, snapshot) if self.runs else []
            if found and self.settings.recheck_delay_s > 0:
                snapshot, found = await self._recheck(found)
            findings, halted, adopt = self._decide(snapshot, found)
            await self._state.adopt_snapshot(snapshot, only=adopt)
            await self._act(findings, snapshot)
            await self._catch_up_fills()
            pnl = await self._check_pnl(reason)
        except ExchangeError as exc:
            self.failures += 1
            self.results["error"] += 1
            self.last_error = str(exc)
            logger.warning("reconcile failed ({} in a row): {}; retrying in {} s", self.failures, exc, self.settings.retry_s)
            report = Report(now, reason, 0, {}, error=str(exc))
            await self._finish(report)
            return report
        report = Report(now, reason, snapshot.as_of_ms, _checked(snapshot), tuple(findings), halted, pnl=pnl)
        self._log_first(snapshot)
        self.runs += 1
        self.failures = 0
        self.corrections += len(findings)
        self.results["clean" if report.clean else "mismatch"] += 1
        self.mismatches.update(str(f.kind) for f in findings)
        self.last_error = None
        self.last_ok_ms = self._clock.now_ms()
        if report.clean:
            self.last_clean_ms = self.last_ok_ms
        if halted and self._halt is not None:
            self._halt(halted)
        await self._finish(report)
        return report

    async def _check_pnl(self, reason: str) -> tuple[str, ...]:
        """On periodic and operator passes only: the income history costs weight 30 a page."""
        if self._pnl is None or not any(part.startswith(_PNL_SOURCES) for part in reason.split("; ")):
            return ()
        return await self._pnl(self._server_time.now_ms())

    async def _catch_up_fills(self) -> None:
        """A failed catch-up does not fail the pass: the next one starts from the same cursor."""
        if self.catch_up is None:
            return
        try:
            await self.catch_up()
        except ExchangeError as exc:
            logger.warning("missed fills not fetched this pass: {}", exc)

    async def _recheck(self, first: list[Mismatch]) -> tuple[AccountSnapshot, list[Mismatch]]:
        """Look again: only what still differs (on the same item) is a mismatch."""
        await self._clock.sleep(self.settings.recheck_delay_s)
        snapshot = await fetch_snapshot(self._rest, self._server_time, self._symbols)
        seen = {(m.kind, m.key) for m in first}
        return snapshot, [m for m in diff(self._state, snapshot) if (m.kind, m.key) in seen]

    def _decide(self, snapshot: AccountSnapshot, found: list[Mismatch]) -> tuple[list[Finding], str | None, frozenset[str]]:
        """The action per mismatch, the halt reason if any, and the classes the store adopts."""
        s = self.settings
        policy = {Kind.ORDER: s.on_order, Kind.ALGO_ORDER: s.on_algo_order, Kind.BALANCE: s.on_balance, Kind.POSITION: s.on_position}
        adopt = {kind for kind, p in policy.items() if p != "log"}
        findings: list[Finding] = []
        halted: str | None = None
        for mismatch in found:
            action = policy[mismatch.kind]
            ours = mismatch.kind not in (Kind.ORDER, Kind.ALGO_ORDER) or self._is_ours(mismatch.key)
            if not ours:
                findings.append(Finding.of(mismatch, "reported (not ours)", ours=False))
                continue
            if action == "halt" and mismatch.kind is Kind.POSITION and self._within_tolerance(mismatch, snapshot):
                action = "adopt"
            if action == "halt":
                halted = halted or f"{mismatch.kind} {mismatch.key}: engine {mismatch.engine or '-'}, exchange {mismatch.exchange or '-'}"
                findings.append(Finding.of(mismatch, "halted"))
            else:
                findings.append(Finding.of(mismatch, "adopted" if action == "adopt" else "logged"))
        return findings, halted, frozenset(str(k) for k in adopt)

    def _within_tolerance(self, mismatch: Mismatch, snapshot: AccountSnapshot) -> bool:
        symbol, _, side = mismatch.key.partition(" ")
        truth = next((p for p in snapshot.positions if p.symbol == symbol and p.position_side == side), None)
        ours = self._state.position(symbol, side)
        amount_gap = abs((truth.amount if truth else Decimal(0)) - (ours.amount if ours else Decimal(0)))
        price = (truth.entry_price if truth and truth.entry_price else None) or (ours.entry_price if ours else Decimal(0))
        return amount_gap * price <= self.settings.position_tolerance

    async def _act(self, findings: list[Finding], snapshot: AccountSnapshot) -> None:
        if self.settings.foreign_orders != "cancel" or self._cancel_foreign is None:
            return
        foreign = {f.key for f in findings if not f.ours and f.kind is Kind.ORDER}
        for order in snapshot.open_orders:
            if order.client_order_id in foreign and (self._symbols is None or order.symbol in self._symbols):
                await self._cancel_foreign(order)

    def _log_first(self, snapshot: AccountSnapshot) -> None:
        if self.runs == 0:  # the first snapshot fills an empty store: that is loading, not a correction
            logger.info(
                "account loaded: {} position(s), {} open order(s), {} algo order(s), {} balance(s)",
                sum(1 for p in snapshot.positions if not p.is_flat),
                len(snapshot.open_orders),
                len(snapshot.open_algo_orders),
                len(snapshot.balances),
            )

    async def _finish(self, report: Report) -> None:
        self.last_report = report
        for callback in self._watchers:
            callback(report)
        if report.error is None:
            if report.clean:
                logger.info("{}", report.summary())
            else:
                logger.warning("{}", report.summary())
                for finding in report.findings:
                    logger.warning("  {}", finding.line())
        if self._on_report is not None:
            try:
                result = self._on_report(report)
                if result is not None:
                    await result
            except Exception as exc:  # a report sink (journal, alerts) must not stop reconciliation
                logger.opt(exception=exc).error("reconcile report could not be recorded")
        await self._publish()

    def problems(self) -> list[str]:
        """/health: a reconciler that keeps failing, has not completed a pass for too long, or whose
        last pass found the engine's view of its own account wrong (until a clean pass follows)."""
        out = []
        report = self.last_report
        wrong = [f for f in report.findings if f.ours] if report is not None and report.error is None else []
        if wrong:
            kinds = ", ".join(sorted({str(f.kind) for f in wrong}))
            out.append(f"last reconcile pass found {len(wrong)} mismatch(es) ({kinds}); POST /reconcile checks again")
        if self.failures >= self.settings.max_failures:
            out.append(f"reconcile failed {self.failures} times in a row: {self.last_error}")
        since = self.last_ok_ms if self.last_ok_ms is not None else self._started_ms
        if since is not None:
            age_s = (self._clock.now_ms() - since) / 1000
            if age_s > self.settings.max_age_s:
                what = "no reconcile pass completed" if self.last_ok_ms is None else "last reconcile pass"
                out.append(f"{what} for {age_s:.0f} s (bound {self.settings.max_age_s:.0f} s)")
        return out

    async def _publish(self) -> None:
        report = self.last_report
        await self._state.set_stream_status(
            "reconcile",
            {
                "runs": self.runs,
                "corrections": self.corrections,
                "failures": self.failures,
                "last_differences": len(report.findings) if report is not None else 0,
                "last_clean": report.clean if report is not None else None,
                "last_error": self.last_error,
                "last_ok_ms": self.last_ok_ms,
                "last_clean_ms": self.last_clean_ms,
                "pending_requests": self._requests.pending,
            },
        )


def _checked(snapshot: AccountSnapshot) -> dict[str, int]:
    return {
        "positions": sum(1 for p in snapshot.positions if not p.is_flat),
        "open_orders": len(snapshot.open_orders),
        "open_algo_orders": len(snapshot.open_algo_orders),
        "balances": len(snapshot.balances),
    }
