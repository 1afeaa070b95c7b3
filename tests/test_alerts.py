"""Alerts reach a real HTTP receiver (apprise's json:// destination), de-duplicated, never blocking."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from aegis.ops.alerts import Alerts
from aegis.redact import redact


@contextlib.asynccontextmanager
async def receiver(fail_first: int = 0) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []
    failures = {"left": fail_first}

    async def hook(request: web.Request) -> web.Response:
        if failures["left"] > 0:
            failures["left"] -= 1
            return web.Response(status=500)
        got.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"json://127.0.0.1:{port}/hook", got
    finally:
        await runner.cleanup()


async def test_an_alert_reaches_the_receiver_with_title_and_body() -> None:
    async with receiver() as (url, got):
        alerts = Alerts([SecretStr(url)])
        task = asyncio.create_task(alerts.run())
        alerts.send("halt", "trading halted", "position BTCUSDT BOTH: engine 0.010, exchange 0.030", "failure")
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.1)
        task.cancel()
        assert len(got) == 1 and got[0]["title"] == "aegis: trading halted"
        assert "exchange 0.030" in got[0]["message"] and alerts.sent == 1


async def test_repeats_are_suppressed_and_failures_retried() -> None:
    async with receiver(fail_first=2) as (url, got):
        alerts = Alerts([SecretStr(url)], repeat_after_s=600)
        task = asyncio.create_task(alerts.run())
        for _ in range(5):
            alerts.send("health:market", "unhealthy", "market stream down")
        await asyncio.sleep(120)
        assert len(got) == 1 and alerts.suppressed == 4 and alerts.failed == 0
        await asyncio.sleep(600)
        alerts.send("health:market", "unhealthy", "market stream still down")
        await asyncio.sleep(30)
        task.cancel()
        assert len(got) == 2


async def test_alert_urls_are_secrets_and_never_logged() -> None:
    url = "json://alert-user:s3cret-token@127.0.0.1:9/hook"
    Alerts([SecretStr(url)])
    assert "s3cret-token" not in redact(f"posting to {url}")


async def test_send_never_blocks_even_when_nobody_delivers() -> None:
    alerts = Alerts([SecretStr("json://127.0.0.1:9/hook")], queue_size=3)
    for i in range(10):
        alerts.send(f"k{i}", "t", "b")  # no run() task: the queue fills, sends are dropped, none blocks
    assert alerts.dropped == 7
