"""Alerts to the services operators use (Telegram, Slack, Discord, e-mail, a JSON webhook...).

Delivered by apprise (one URL per destination, e.g. ``tgram://token/chat``, ``slack://...``,
``json://host/path``): a well-kept library that speaks ~100 services, so aegis needs no code per
service. URLs carry credentials, so they are secrets: masked in ``aegis config``, redacted from
logs. Alerting never blocks the loop or trading: ``send`` only queues; one task delivers, with
retries; an alert about the same thing (its key) is sent at most once per ``repeat_after_s``, the
rest counted as suppressed; a full queue drops the newest and counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterable

import msgspec
from loguru import logger
from pydantic import SecretStr

from aegis.backoff import backoff_delay
from aegis.clock import TimeSource
from aegis.redact import register_secret

__all__ = ["Alert", "Alerts"]


class Alert(msgspec.Struct, frozen=True):
    key: str  # what it is about: repeats of the same key within repeat_after_s are suppressed
    title: str
    body: str
    level: str = "warning"  # info | warning | failure


class Alerts:
    def __init__(
        self,
        urls: Iterable[SecretStr],
        *,
        repeat_after_s: float = 900.0,
        retries: int = 3,
        queue_size: int = 100,
    ) -> None:
        import apprise  # imported here: an engine without alert URLs does not pay for it

        self._apprise = apprise.Apprise()
        self.destinations = 0
        for url in urls:
            text = url.get_secret_value()
            register_secret(text)
            if self._apprise.add(text):
                self.destinations += 1
            else:
                logger.error("alerts: a destination URL is not understood by apprise (it is not used)")
        self.repeat_after_s = repeat_after_s
        self.retries = retries
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=queue_size)
        self._last_sent: dict[str, float] = {}
        self.sent = 0
        self.failed = 0
        self.suppressed = 0
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        return self.destinations > 0

    def send(self, key: str, title: str, body: str, level: str = "warning") -> None:
        """Queue an alert; never blocks, never raises."""
        if not self.enabled:
            return
        now = asyncio.get_running_loop().time()
        last = self._last_sent.get(key)
        if last is not None and now - last < self.repeat_after_s:
            self.suppressed += 1
            return
        self._last_sent[key] = now
        try:
            self._queue.put_nowait(Alert(key, title, body, level))
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self) -> None:
        """Deliver queued alerts until cancelled."""
        while True:
            alert = await self._queue.get()
            try:
                await self._deliver(alert)
            finally:
                self._queue.task_done()

    async def flush(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (a fatal exit's last words), within ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), timeout_s)

    async def _drain(self) -> None:
        while not self._queue.empty():
            alert = self._queue.get_nowait()
            try:
                await self._deliver(alert)
            finally:
                self._queue.task_done()

    async def _deliver(self, alert: Alert) -> None:
        import apprise

        notify_type = {"info": apprise.NotifyType.INFO, "failure": apprise.NotifyType.FAILURE}.get(
            alert.level, apprise.NotifyType.WARNING
        )
        for attempt in range(1, self.retries + 2):
            ok = False
            notify = functools.partial(
                self._apprise.notify, body=alert.body, title=f"aegis: {alert.title}", notify_type=notify_type
            )
            try:
                # apprise's own async_notify waits on threads the loop cannot see; its sync notify on
                # the loop's executor is seen (a virtual-time loop then waits for it instead of timing out).
                ok = bool(await asyncio.get_running_loop().run_in_executor(None, notify))
            except Exception as exc:  # a broken destination must not stop the others or the engine
                logger.warning("alert {} could not be delivered: {}", alert.key, exc)
            if ok:
                self.sent += 1
                return
            if attempt <= self.retries:
                await asyncio.sleep(backoff_delay(attempt, 1.0, 30.0))
        self.failed += 1
        logger.warning("alert {} not delivered after {} attempts", alert.key, self.retries + 1)

    async def watch(self, problems: Callable[[], list[str]], after_s: float, clock: TimeSource) -> None:
        """Alert a /health problem (keyed by its text before the first ':') once it has lasted
        ``after_s``; a problem that goes away and comes back starts counting again."""
        first_seen: dict[str, int] = {}
        while True:
            now = clock.now_ms()
            current = {p.split(":", 1)[0]: p for p in problems()}
            for key in [k for k in first_seen if k not in current]:
                del first_seen[key]
            for key, text in current.items():
                if now - first_seen.setdefault(key, now) >= after_s * 1000:
                    self.send(f"health:{key}", "unhealthy", text)
            await clock.sleep(10.0)
