"""The trading side of the engine in one place: what a strategy calls, and what the kill switch does.

``Trader.execute(intent)`` is the only way an order is made: risk gate, sizing, journal, exactly-once
send, then the protective orders the intent asked for. The kill switch (a file, SIGUSR1, POST /kill,
or the daily loss limit) stops new orders and, by ``risk.on_kill``, cancels our resting entries
and/or flattens every position with reduce-only market orders; protective stops stay until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from loguru import logger

from aegis.clock import TimeSource
from aegis.config import OrderSettings, RiskSettings
from aegis.domain import ZERO
from aegis.reconcile.requests import ReconcileRequests
from aegis.state import StateStore, StatusValue
from aegis.trading.filters import FilterBook
from aegis.trading.intents import Intent, Outcome, Submission
from aegis.trading.journal import Journal
from aegis.trading.ledger import Ledger
from aegis.trading.orders import OrderApi, OrderManager
from aegis.trading.protection import ProtectionKeeper
from aegis.trading.risk import RiskGate

__all__ = ["Trader"]

Prices = Callable[[str], Decimal | None]


class Trader:
    def __init__(
        self,
        rest: OrderApi,
        filters: FilterBook,
        state: StateStore,
        journal: Journal,
        clock: TimeSource,
        prices: Prices,
        orders: OrderSettings,
        risk: RiskSettings,
        *,
        dry_run: bool = False,
        reconcile: ReconcileRequests | None = None,
    ) -> None:
        self._state = state
        self._clock = clock
        self.filters = filters
        self.ledger = Ledger(journal, state, clock)
        self.risk = RiskGate(risk, state, clock, prices, self.ledger.daily_pnl)
        self.orders = OrderManager(
            rest, state, journal, filters, self.risk, clock, prices, orders, dry_run=dry_run, reconcile=reconcile
        )
        self.protection = ProtectionKeeper(self.orders, state, filters, clock, prices, orders)
        self.kill_actions = 0
        self._killing: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()  # in-flight orders resolved: new ones may go

    async def execute(self, intent: Intent) -> Submission:
        """The one way to trade (see the module docstring); refused until start-up recovery is done."""
        if not self.ready.is_set():
            return Submission("", Outcome.REFUSED, reason="start-up recovery not finished")
        sub = await self.orders.submit(intent)
        self.protection.track(intent, sub)
        return sub

    async def recover(self) -> None:
        """Before any new order: learn the fate of every order the journal has in flight."""
        await self.orders.recover()
        self.ready.set()

    # --- the kill switch -----------------------------------------------------------------------

    def kill(self, reason: str) -> None:
        """Engage the kill switch and carry out ``risk.on_kill`` (once per engagement)."""
        if self.risk.kill.engage(reason):
            self._killing = asyncio.ensure_future(self._on_kill())

    def clear_kill(self, who: str) -> bool:
        return self.risk.kill.clear(who)

    async def _on_kill(self) -> None:
        action = self.risk.settings.on_kill
        symbols = {o.symbol for o in self._state.open_orders()} | {p.symbol for p in self._state.positions()}
        for symbol in sorted(symbols):
            try:
                if action in ("cancel", "flatten"):
                    self.kill_actions += await self.orders.cancel_all(symbol, entries_only=action == "cancel")
                if action == "flatten":
                    await self._flatten(symbol)
            except Exception as exc:
                logger.opt(exception=exc).error("kill switch: {} of {} failed", action, symbol)

    async def _flatten(self, symbol: str) -> None:
        position = self._state.position(symbol)
        if position is None or position.amount == ZERO:
            return
        cause = f"kill:{self.risk.kill.since_ms}"
        intent = Intent("kill-switch", symbol, cause, target_position=ZERO)
        sub = await self.orders.submit(intent)
        logger.warning("kill switch: flattening {} {} -> {}", symbol, position.amount, sub.outcome)

    async def watch_kill_file(self, path: Path | None, check_s: float = 1.0) -> None:
        """The kill switch file: its existence engages the switch (touch it to stop trading)."""
        if path is None:
            return
        while True:
            if not self.risk.kill.engaged and _exists(path):
                self.kill(f"kill switch file {path} exists")
            await asyncio.sleep(check_s)

    # --- reporting ---------------------------------------------------------------------------

    def status(self) -> dict[str, StatusValue]:
        o = self.orders
        out: dict[str, StatusValue] = {
            "ready": self.ready.is_set(),
            "dry_run": o.dry_run,
            "kill_switch": self.risk.kill.reason,
            "halt": self.risk.halt.reason,
            "orders_placed": o.outcomes[Outcome.PLACED],
            "orders_refused": o.outcomes[Outcome.REFUSED],
            "orders_rejected": o.outcomes[Outcome.REJECTED],
            "orders_failed": o.outcomes[Outcome.FAILED],
            "retries": o.retries,
            "fills": self.ledger.fills,
            "realized_pnl": format(self.ledger.realized_total, "f"),
            "fees": format(self.ledger.fees_total, "f"),
            "protective_placed": self.protection.placed,
            "protective_replaced": self.protection.replaced,
        }
        for code, n in sorted(o.rejections.items()):
            out[f"rejections.{code}"] = n
        for what, n in sorted(o.refusals.items()):
            out[f"refusals.{what}"] = n
        for kind, n in sorted(o.unknown.items()):
            out[f"unknown_outcome.{kind}"] = n
        return out

    def problems(self) -> list[str]:
        out = []
        if self.risk.kill.engaged:
            out.append(f"kill switch engaged: {self.risk.kill.reason}")
        if self.risk.halt.engaged:
            out.append(f"trading halted by reconciliation: {self.risk.halt.reason} (DELETE /halt to resume)")
        if not self.ready.is_set():
            out.append("trading not ready: resolving orders the journal has in flight")
        return out

    async def close(self) -> None:
        if self._killing is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._killing, 5.0)
        await self.ledger.flush()

    def summary(self) -> dict[str, Any]:
        return dict(self.status())


def _exists(path: Path) -> bool:
    """One stat a second: cheap enough to do on the loop (ruff's ASYNC240 guards against slow I/O)."""
    return os.path.exists(path)
