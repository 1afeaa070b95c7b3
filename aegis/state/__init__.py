"""The engine's in-memory state: one store, written through one set of rules (``rules``)."""

from aegis.state.store import (
    AccountSnapshot,
    CandleSummary,
    Hole,
    StateSnapshot,
    StateStore,
    StatusValue,
    snapshot_to_builtins,
)

__all__ = [
    "AccountSnapshot",
    "CandleSummary",
    "Hole",
    "StateSnapshot",
    "StateStore",
    "StatusValue",
    "snapshot_to_builtins",
]
