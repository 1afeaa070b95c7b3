"""One injected fault and what became of it: the rows of GET /_sim/faults."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("aegis.sim.faults")


@dataclass(eq=False)
class Fault:
    id: int
    kind: str
    params: dict[str, Any]
    effective_ms: int
    status: str = "active"  # active | done | cleared
    ended_ms: int | None = None
    hits: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    def finish(self, now_ms: int, status: str = "done") -> None:
        if self.status == "active":
            self.status = status
            self.ended_ms = now_ms
            log.info("fault #%d %s %s at %d", self.id, self.kind, status, now_ms)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "params": self.params,
            "effective_ms": self.effective_ms,
            "status": self.status,
            "ended_ms": self.ended_ms,
            "hits": self.hits,
            **({"detail": self.detail} if self.detail else {}),
        }
