"""The engine's start is stamped in exchange time (found by the soak).

Against a simulator whose clock is pinned (``aegis sim`` at another date, as the soak runs it), the
engine stamped its start before it followed the simulator's clock: /state showed a negative uptime
and the run summary asked the exchange for the funding fees since a moment in the exchange's
future (always none). The start is now taken once the clock follows the exchange.
"""

from __future__ import annotations

from tests.harness import T_START_MS
from tests.rigs import engine_rig


async def test_uptime_and_the_runs_start_are_exchange_time() -> None:
    async with engine_rig() as rig:
        assert T_START_MS <= rig.engine.started_ms <= rig.engine.clock.now_ms()
        state = (await rig.get("/state"))[1]
        assert 0 <= state["engine"]["uptime_ms"] < 3_600_000
