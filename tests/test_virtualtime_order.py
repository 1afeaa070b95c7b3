"""Timers due at the same virtual instant run in the order they were scheduled.

On virtual time many timers fall due at exactly one instant (every ``call_later(1e-6)`` taken at
one instant: the strategy's evaluation, the equity samples of a backfilled stretch). asyncio's
own heap leaves their order to its layout, i.e. to every unrelated timer pushed and cancelled
before (aiohttp re-arms a read timeout per chunk the kernel delivers, which varies with load), so
a backtest's results varied with the machine.
"""

from __future__ import annotations

import asyncio

from aegis import virtualtime


async def _same_instant_order() -> list[int]:
    loop = asyncio.get_running_loop()
    order: list[int] = []
    for i in range(20):
        loop.call_later(1e-6, order.append, i)
        # Unrelated timers, due earlier or later, some re-armed: they reshape the heap.
        loop.call_later(1e-7 * (i + 1), lambda: None)
        loop.call_later(5.0 + i, lambda: None).cancel()
    await asyncio.sleep(1.0)
    return order


def test_timers_due_at_one_instant_run_in_scheduling_order() -> None:
    assert virtualtime.run(_same_instant_order()) == list(range(20))
