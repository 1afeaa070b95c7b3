"""Fault injection for the simulator (issue 5)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def install(app: web.Application, sim: Any) -> None:
    """Add the fault middleware and the /_sim/faults admin routes to ``app``. Placeholder."""
