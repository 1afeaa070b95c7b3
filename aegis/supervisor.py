"""Named, supervised, cancellable long-lived tasks.

A task that raises is logged with its traceback and restarted after a jittered,
exponentially growing delay; a task marked critical instead stops the engine with a
non-zero exit. Nothing dies silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from loguru import logger

from aegis.backoff import backoff_delay
from aegis.clock import Clock

TaskFactory = Callable[[], Awaitable[None]]


@dataclass
class TaskInfo:
    """What /health and /state report about one supervised task."""

    name: str
    critical: bool
    restarts: int = 0
    running: bool = False
    last_error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class CriticalTaskFailed(Exception):
    def __init__(self, name: str, error: BaseException) -> None:
        super().__init__(f"critical task {name!r} failed: {error!r}")
        self.name = name
        self.error = error


class Supervisor:
    def __init__(self, clock: Clock, backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0) -> None:
        self._clock = clock
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._tasks: dict[str, TaskInfo] = {}
        self._fatal: asyncio.Future[CriticalTaskFailed] = asyncio.get_running_loop().create_future()
        self._stopping = False

    @property
    def tasks(self) -> dict[str, TaskInfo]:
        return dict(self._tasks)

    def spawn(self, name: str, factory: TaskFactory, *, critical: bool = False) -> None:
        """Run ``factory()`` under supervision. A return without error ends the task for good."""
        if name in self._tasks:
            raise ValueError(f"task {name!r} already exists")
        info = TaskInfo(name=name, critical=critical)
        self._tasks[name] = info
        info.task = asyncio.create_task(self._guard(info, factory), name=name)

    async def _guard(self, info: TaskInfo, factory: TaskFactory) -> None:
        failures = 0
        while not self._stopping:
            info.running = True
            try:
                await factory()
                info.running = False
                logger.info("task {} finished", info.name)
                return
            except asyncio.CancelledError:
                info.running = False
                raise
            except Exception as exc:
                info.running = False
                info.last_error = f"{type(exc).__name__}: {exc}"
                logger.opt(exception=exc).error("task {} crashed", info.name)
                if info.critical:
                    if not self._fatal.done():
                        self._fatal.set_result(CriticalTaskFailed(info.name, exc))
                    return
                failures += 1
                info.restarts += 1
                delay = self.backoff_delay(failures)
                logger.warning("restarting task {} in {:.2f}s (restart #{})", info.name, delay, info.restarts)
                await self._clock.sleep(delay)

    def backoff_delay(self, failures: int) -> float:
        """Delay before restart number ``failures``: spreads restarts so they do not stampede."""
        return backoff_delay(failures, self._backoff_initial, self._backoff_max)

    async def wait_fatal(self) -> CriticalTaskFailed:
        """Resolve when a critical task has failed."""
        return await asyncio.shield(self._fatal)

    def problems(self) -> list[str]:
        """Why the engine is unhealthy: critical tasks that are not running."""
        return [
            f"critical task {i.name} is not running" + (f" ({i.last_error})" if i.last_error else "")
            for i in self._tasks.values()
            if i.critical and (i.task is None or i.task.done())
        ]

    def cancel(self, name: str) -> None:
        """Stop one task for good (shutdown order: the strategy before the final checks)."""
        info = self._tasks.get(name)
        if info is not None and info.task is not None and not info.task.done():
            info.task.cancel()

    async def stop(self, timeout_s: float) -> bool:
        """Cancel every task and wait at most ``timeout_s`` wall seconds; True if all ended."""
        self._stopping = True
        running = [i.task for i in self._tasks.values() if i.task is not None and not i.task.done()]
        for task in running:
            task.cancel()
        if not running:
            return True
        _, pending = await asyncio.wait(running, timeout=timeout_s)
        for task in pending:
            logger.error("task {} did not stop within {}s", task.get_name(), timeout_s)
        return not pending
