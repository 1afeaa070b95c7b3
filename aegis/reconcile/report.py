"""What one reconciliation pass found and did: kept in the journal, logged, served to operators.

A clean pass is one log line; otherwise every mismatch is listed with both sides' values and the
action taken. ``aegis reconcile --once`` prints the same report as a table or as JSON.
"""

from __future__ import annotations

from typing import Any

import msgspec

from aegis.reconcile.diff import Kind, Mismatch

__all__ = ["Finding", "Report"]


class Finding(msgspec.Struct, frozen=True):
    """One mismatch and what the pass did about it."""

    kind: Kind
    key: str
    engine: str | None
    exchange: str | None
    action: str  # "logged", "adopted", "halted", "cancelled", "reported (not ours)"
    ours: bool = True

    @classmethod
    def of(cls, mismatch: Mismatch, action: str, *, ours: bool = True) -> Finding:
        return cls(mismatch.kind, mismatch.key, mismatch.engine, mismatch.exchange, action, ours)

    def line(self) -> str:
        return f"{self.kind} {self.key}: engine {self.engine or '-'}, exchange {self.exchange or '-'} -> {self.action}"


class Report(msgspec.Struct, frozen=True):
    at_ms: int
    reason: str
    as_of_ms: int
    checked: dict[str, int]  # how many items of each kind were compared
    findings: tuple[Finding, ...] = ()
    halted: str | None = None  # why trading was halted by this pass
    error: str | None = None
    pnl: tuple[str, ...] = ()  # PnL differences with the exchange's income history, one line each

    @property
    def clean(self) -> bool:
        return self.error is None and not self.findings and not self.pnl

    def summary(self) -> str:
        if self.error is not None:
            return f"reconcile ({self.reason}) failed: {self.error}"
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.checked.items()))
        if self.clean:
            return f"reconcile ({self.reason}): clean ({counts})"
        extra = f"; trading halted: {self.halted}" if self.halted else ""
        return f"reconcile ({self.reason}): {len(self.findings) + len(self.pnl)} mismatch(es) ({counts}){extra}"

    def to_builtins(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        out["clean"] = self.clean
        return out
