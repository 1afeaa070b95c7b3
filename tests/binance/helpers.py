"""Small async helpers shared by the adapter tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(predicate: Callable[[], bool], within: float = 3.0, step: float = 0.005) -> None:
    """Poll ``predicate`` until it holds; fail loudly after ``within`` wall seconds."""
    for _ in range(max(1, int(within / step))):
        if predicate():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"condition not met within {within} s")
