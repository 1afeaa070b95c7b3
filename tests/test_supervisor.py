"""Supervised tasks: a crash is logged and restarted; a critical crash stops the engine."""

from __future__ import annotations

import asyncio

from loguru import logger

from aegis.clock import Clock
from aegis.supervisor import Supervisor


async def test_a_crashing_task_is_restarted_with_its_traceback_logged() -> None:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="ERROR")
    runs = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError(f"boom {runs}")
        done.set()
        await asyncio.Event().wait()

    sup = Supervisor(Clock(speed=1000.0), backoff_initial_s=0.5, backoff_max_s=2.0)
    sup.spawn("flaky", flaky)
    await asyncio.wait_for(done.wait(), timeout=5)
    logger.remove(sink)
    assert runs == 3
    assert sup.tasks["flaky"].restarts == 2
    assert sup.tasks["flaky"].running
    assert any("task flaky crashed" in m and "RuntimeError: boom 1" in m and "Traceback" in m for m in messages)
    assert await sup.stop(timeout_s=1)


async def test_a_critical_crash_is_fatal_and_unhealthy() -> None:
    async def dies() -> None:
        raise ValueError("lost the exchange")

    sup = Supervisor(Clock())
    sup.spawn("critical", dies, critical=True)
    fatal = await asyncio.wait_for(sup.wait_fatal(), timeout=2)
    assert fatal.name == "critical"
    assert isinstance(fatal.error, ValueError)
    assert sup.problems() == ["critical task critical is not running (ValueError: lost the exchange)"]


async def test_backoff_grows_and_is_capped() -> None:
    sup = Supervisor(Clock(), backoff_initial_s=1.0, backoff_max_s=8.0)
    assert 0.5 <= sup.backoff_delay(1) <= 1.0
    assert 2.0 <= sup.backoff_delay(3) <= 4.0
    assert all(4.0 <= sup.backoff_delay(n) <= 8.0 for n in range(5, 40))


async def test_stop_cancels_tasks_within_the_timeout() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    sup = Supervisor(Clock())
    sup.spawn("forever", forever, critical=True)
    await asyncio.sleep(0)
    assert await sup.stop(timeout_s=1)
    assert cancelled.is_set()
