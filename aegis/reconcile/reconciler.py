"""Reconciler, first cut: the exchange is the source of truth.

At start-up and on every request (a user-stream reconnect, a silent stream whose REST
cross-check disagrees) it takes a REST snapshot of open orders, positions and balances,
adopts it into the store while stream events are held back, and logs every difference it
corrected: a phantom the exchange does not have, or something the engine missed.
Policies, reports, the journal and ``aegis reconcile --once`` come with the reconciliation
issue; this module is where they will live.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Protocol

from loguru import logger

from aegis.account.stream import UserStream
from aegis.binance.errors import ExchangeError
from aegis.clock import Clock
from aegis.domain import Balance, Order, Position
from aegis.reconcile.requests import ReconcileRequests
from aegis.state.store import StateSnapshot, StateStore

# Stream events stamped up to this long before the snapshot may already be in it; applying
# them again is harmless (application is idempotent), missing one is not.
AS_OF_MARGIN_MS = 1_000


class AccountSource(Protocol):
    """The REST calls a snapshot needs (``aegis.binance.BinanceRest`` has them)."""

    async def open_orders(self, symbol: str | None = None) -> list[Order]: ...

    async def positions(self, symbol: str | None = None) -> list[Position]: ...

    async def balances(self) -> list[Balance]: ...


class ServerTime(Protocol):
    def now_ms(self) -> int: ...


def differences(
    before: StateSnapshot, positions: Iterable[Position], orders: Iterable[Order], balances: Iterable[Balance]
) -> list[str]:
    """What the store believed that the exchange contradicts, one line per item."""
    out: list[str] = []
    exchange_pos = {p.symbol: p.amount for p in positions if p.amount != 0}
    store_pos = {s: p.amount for s, p in before.positions.items()}
    for symbol in sorted(store_pos.keys() | exchange_pos.keys()):
        have, truth = store_pos.get(symbol, Decimal(0)), exchange_pos.get(symbol, Decimal(0))
        if have != truth:
            kind = "phantom position" if truth == 0 else "missed position" if have == 0 else "position"
            out.append(f"{kind} {symbol}: store {have}, exchange {truth}")
    exchange_orders = {o.client_order_id: o for o in orders if o.status.is_open}
    for cid in sorted(before.open_orders.keys() - exchange_orders.keys()):
        out.append(f"phantom order {cid} ({before.open_orders[cid].symbol}): not open on the exchange")
    for cid in sorted(exchange_orders.keys() - before.open_orders.keys()):
        out.append(f"missed order {cid} ({exchange_orders[cid].symbol}): open on the exchange")
    out += _balance_differences(before.balances, balances)
    return out


def _balance_differences(store: Mapping[str, Balance], exchange: Iterable[Balance]) -> list[str]:
    truth = {b.asset: b.wallet_balance for b in exchange}
    have = {a: b.wallet_balance for a, b in store.items()}
    return [
        f"balance {asset}: store {have.get(asset, Decimal(0))}, exchange {truth.get(asset, Decimal(0))}"
        for asset in sorted(have.keys() | truth.keys())
        if have.get(asset, Decimal(0)) != truth.get(asset, Decimal(0))
    ]


class Reconciler:
    """The long-lived "reconcile" task: snapshot, adopt, report; retried after an exchange error."""

    def __init__(
        self,
        rest: AccountSource,
        server_time: ServerTime,
        user: UserStream,
        state: StateStore,
        requests: ReconcileRequests,
        clock: Clock,
        *,
        retry_s: float = 5.0,
    ) -> None:
        self._rest = rest
        self._server_time = server_time
        self._user = user
        self._state = state
        self._requests = requests
        self._clock = clock
        self._retry_s = retry_s
        self.runs = 0
        self.corrections = 0
        self.last_differences: list[str] = []
        self.last_error: str | None = None

    async def run(self) -> None:
        reason = "start-up"
        while True:
            try:
                await self.reconcile(reason)
            except ExchangeError as exc:
                self.last_error = str(exc)
                logger.warning("reconcile failed ({}); retrying in {}s", exc, self._retry_s)
                await self._publish()
                await self._clock.sleep(self._retry_s)
                continue
            taken = await self._requests.wait()
            reason = "; ".join(dict.fromkeys(f"{r.source}: {r.reason}" for r in taken))

    async def reconcile(self, reason: str) -> list[str]:
        """One snapshot adopted into the store; returns the differences it corrected."""
        async with self._user.paused():
            as_of = self._server_time.now_ms() - AS_OF_MARGIN_MS
            orders, positions, balances = await asyncio.gather(
                self._rest.open_orders(), self._rest.positions(), self._rest.balances()
            )
            before = self._state.snapshot()
            await self._user.adopt_snapshot(as_of, positions, orders, balances)
        # The first snapshot fills an empty store: that is loading, not a correction.
        found = differences(before, positions, orders, balances) if self.runs else []
        if not self.runs:
            logger.info(
                "account loaded: {} position(s), {} open order(s), {} balance(s)",
                sum(1 for p in positions if p.amount != 0),
                len(orders),
                len(balances),
            )
        self.runs += 1
        self.corrections += len(found)
        self.last_differences = found
        self.last_error = None
        if found:
            logger.warning("reconcile ({}): adopted the exchange's state, {} difference(s):", reason, len(found))
            for line in found:
                logger.warning("  {}", line)
        else:
            logger.info("reconcile ({}): the store matches the exchange", reason)
        await self._publish()
        return found

    async def _publish(self) -> None:
        await self._state.set_stream_status(
            "reconcile",
            {
                "runs": self.runs,
                "corrections": self.corrections,
                "last_differences": len(self.last_differences),
                "last_error": self.last_error,
                "pending_requests": self._requests.pending,
            },
        )
