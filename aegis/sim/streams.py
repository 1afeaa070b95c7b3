"""WebSocket side of the simulator: market streams and the user data stream (issue 5)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def install(app: web.Application, sim: Any) -> None:
    """Add the WebSocket routes (and the listenKey REST endpoints) to ``app``. Placeholder."""
