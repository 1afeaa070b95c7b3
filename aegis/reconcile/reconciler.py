"""The reconciler: the exchange is the source of truth.

At start-up, on every request (a user-stream reconnect, a silent stream whose REST cross-check
disagrees) and periodically, it takes a REST snapshot of positions, open orders, open algo
orders and balances, compares it with the store (``aegis.reconcile.diff``), logs every
difference and adopts the exchange's values into the store. Stream events keep being applied
while the snapshot is in flight: the store's as-of fence, not a lock held across the requests,
keeps an older snapshot from undoing a newer event (a REST ban can last for hours; the account
view must not freeze for as long).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from loguru import logger

from aegis.binance.errors import ExchangeError
from aegis.clock import TimeSource
from aegis.domain import AlgoOrder, Balance, Order, Position
from aegis.reconcile.diff import Mismatch, diff
from aegis.reconcile.requests import ReconcileRequests
from aegis.state import AccountSnapshot, StateStore

__all__ = ["AS_OF_MARGIN_MS", "AccountSource", "Reconciler", "ServerTime", "fetch_snapshot"]

# Stream events stamped up to this long before the snapshot may already be in it; applying them
# again is harmless (every write is idempotent), missing one is not.
AS_OF_MARGIN_MS = 1_000


class AccountSource(Protocol):
    """The REST calls a snapshot needs (``aegis.binance.BinanceRest`` has them)."""

    async def open_orders(self, symbol: str | None = None) -> list[Order]: ...

    async def open_algo_orders(self, symbol: str | None = None) -> list[AlgoOrder]: ...

    async def positions(self, symbol: str | None = None) -> list[Position]: ...

    async def balances(self) -> list[Balance]: ...


class ServerTime(Protocol):
    def now_ms(self) -> int: ...


async def fetch_snapshot(rest: AccountSource, server_time: ServerTime) -> AccountSnapshot:
    """The exchange's account, stamped with an exchange time taken before the first request."""
    as_of = server_time.now_ms() - AS_OF_MARGIN_MS
    orders, algos, positions, balances = await asyncio.gather(
        rest.open_orders(), rest.open_algo_orders(), rest.positions(), rest.balances()
    )
    return AccountSnapshot(as_of, tuple(positions), tuple(orders), tuple(algos), tuple(balances))


class Reconciler:
    """The long-lived "reconcile" task: snapshot, compare, adopt, report; retried after an error."""

    def __init__(
        self,
        rest: AccountSource,
        server_time: ServerTime,
        state: StateStore,
        requests: ReconcileRequests,
        clock: TimeSource,
        *,
        interval_s: float = 900.0,
        retry_s: float = 5.0,
        max_age_s: float = 1800.0,
        max_failures: int = 3,
    ) -> None:
        self._rest = rest
        self._server_time = server_time
        self._state = state
        self._requests = requests
        self._clock = clock
        self.interval_s = interval_s
        self.retry_s = retry_s
        self.max_age_s = max_age_s
        self.max_failures = max_failures
        self.runs = 0
        self.corrections = 0
        self.failures = 0  # consecutive
        self.last_differences: list[Mismatch] = []
        self.last_error: str | None = None
        self.last_ok_ms: int | None = None
        self._started_ms: int | None = None

    async def run(self) -> None:
        self._started_ms = self._clock.now_ms()
        reason = "start-up"
        while True:
            try:
                await self.reconcile(reason)
            except ExchangeError as exc:
                self.failures += 1
                self.last_error = str(exc)
                logger.warning("reconcile failed ({} in a row): {}; retrying in {} s", self.failures, exc, self.retry_s)
                await self._publish()
                await self._clock.sleep(self.retry_s)
                continue
            reason = await self._next_reason()

    async def _next_reason(self) -> str:
        """Wait for requests (coalesced) or the periodic backstop, whichever comes first."""
        try:
            taken = await asyncio.wait_for(self._requests.wait(), self._clock.wall_seconds(self.interval_s))
        except TimeoutError:
            return "periodic"
        return "; ".join(dict.fromkeys(f"{r.source}: {r.reason}" for r in taken))

    async def reconcile(self, reason: str) -> list[Mismatch]:
        """One snapshot compared and adopted into the store; returns the differences it corrected."""
        snapshot = await fetch_snapshot(self._rest, self._server_time)
        # The first snapshot fills an empty store: that is loading, not a correction.
        found = diff(self._state, snapshot) if self.runs else []
        await self._state.adopt_snapshot(snapshot)
        if not self.runs:
            logger.info(
                "account loaded: {} position(s), {} open order(s), {} algo order(s), {} balance(s)",
                sum(1 for p in snapshot.positions if not p.is_flat),
                len(snapshot.open_orders),
                len(snapshot.open_algo_orders),
                len(snapshot.balances),
            )
        self.runs += 1
        self.failures = 0
        self.corrections += len(found)
        self.last_differences = found
        self.last_error = None
        self.last_ok_ms = self._clock.now_ms()
        if found:
            logger.warning("reconcile ({}): adopted the exchange's state, {} difference(s):", reason, len(found))
            for mismatch in found:
                logger.warning("  {}", mismatch)
        else:
            logger.info("reconcile ({}): the store matches the exchange", reason)
        await self._publish()
        return found

    def problems(self) -> list[str]:
        """/health: a reconciler that keeps failing, or has not completed a pass for too long."""
        out = []
        if self.failures >= self.max_failures:
            out.append(f"reconcile failed {self.failures} times in a row: {self.last_error}")
        since = self.last_ok_ms if self.last_ok_ms is not None else self._started_ms
        if since is not None:
            age_s = (self._clock.now_ms() - since) / 1000
            if age_s > self.max_age_s:
                what = "no reconcile pass completed" if self.last_ok_ms is None else "last reconcile pass"
                out.append(f"{what} for {age_s:.0f} s (bound {self.max_age_s:.0f} s)")
        return out

    async def _publish(self) -> None:
        await self._state.set_stream_status(
            "reconcile",
            {
                "runs": self.runs,
                "corrections": self.corrections,
                "failures": self.failures,
                "last_differences": len(self.last_differences),
                "last_error": self.last_error,
                "last_ok_ms": self.last_ok_ms,
                "pending_requests": self._requests.pending,
            },
        )
