"""The channel through which components ask the reconciler to compare state with the exchange.

The user stream cannot know what it missed while it was disconnected, so after every
reconnect (and whenever a cross-check disagrees) it asks for a reconciliation. Requests
coalesce: a reconciler that runs once after a burst of reconnects has answered them all.
Until a reconciler consumes the channel, each request is still logged, never dropped silently.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from loguru import logger

__all__ = ["ReconcileRequest", "ReconcileRequests"]


class ReconcileRequest:
    """One request: why, and when (engine clock ms)."""

    __slots__ = ("at_ms", "reason", "source")

    def __init__(self, source: str, reason: str, at_ms: int) -> None:
        self.source = source
        self.reason = reason
        self.at_ms = at_ms

    def __repr__(self) -> str:
        return f"ReconcileRequest({self.source!r}, {self.reason!r}, at_ms={self.at_ms})"


class ReconcileRequests:
    """Pending reconciliation requests (coalescing) plus a bounded history for tests and /state."""

    def __init__(self, now_ms: Callable[[], int], history: int = 256, max_pending: int = 100) -> None:
        self._now_ms = now_ms
        self._pending: deque[ReconcileRequest] = deque(maxlen=max_pending)  # without a consumer: bounded
        self._event = asyncio.Event()
        self.history: deque[ReconcileRequest] = deque(maxlen=history)
        self.total = 0

    def request(self, source: str, reason: str) -> None:
        """Ask for a reconciliation; never blocks, never raises."""
        req = ReconcileRequest(source, reason, self._now_ms())
        self._pending.append(req)
        self.history.append(req)
        self.total += 1
        self._event.set()
        logger.info("reconciliation requested by {}: {}", source, reason)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def take(self) -> list[ReconcileRequest]:
        """All pending requests, oldest first; the channel is empty afterwards."""
        taken = list(self._pending)
        self._pending.clear()
        self._event.clear()
        return taken

    async def wait(self) -> list[ReconcileRequest]:
        """Wait until at least one request is pending, then take them all (for the reconciler's loop)."""
        while not self._pending:
            await self._event.wait()
        return self.take()
