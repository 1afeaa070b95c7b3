"""The whole engine in this process against a simulator it is pointed at (``--sim-url``), on virtual time."""

from __future__ import annotations

import asyncio
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from loguru import logger

from aegis.config import Settings
from aegis.engine import Engine
from aegis.exitcodes import EXIT_AUTH, EXIT_FAILED, EXIT_INTERRUPTED
from aegis.sim.admin import SimAdmin
from tests.harness import DEMO_API_KEY, exchange_sleep, running_sim, until
from tests.rigs import engine_rig


async def test_the_engine_warms_up_trades_are_seen_and_health_is_ok() -> None:
    async with engine_rig() as rig:
        status, body = await rig.get("/state")
        assert status == 200 and body["candles"]["BTCUSDT"]["count"] >= 100
        await rig.admin.trade(DEMO_API_KEY, "BTCUSDT", "BUY", "0.010")

        async def seen() -> bool:
            return await rig.position() != 0

        took = await until(seen, 10.0, "the out-of-band trade in /state")
        assert took < 2.0  # the user stream, not a periodic reconciliation, brought it
        positions = (await rig.get("/state"))[1]["positions"]
        assert [(p["symbol"], Decimal(p["amount"])) for p in positions] == [("BTCUSDT", Decimal("0.010"))]
        assert (await rig.get("/health"))[0] == 200


async def test_an_accelerated_simulator_is_followed_without_a_single_minus_1021() -> None:
    # `aegis sim --speed 60` and `aegis run --sim-url`: the engine learns the exchange's speed.
    async with engine_rig(sim={"speed": 60.0}) as rig:
        assert rig.engine.clock.speed == 60.0
        await exchange_sleep(rig.sim, 5 * 60)  # five exchange minutes
        assert rig.engine.rest is not None and rig.engine.rest.transport.clock_retries == 0
        reconcile = (await rig.get("/state"))[1]["streams"]["reconcile"]
        assert reconcile["runs"] >= 1 and reconcile["failures"] == 0
        assert abs(rig.engine.rest.offset_ms) < 1000


async def test_a_simulator_too_fast_for_recv_window_is_refused_with_a_clear_error() -> None:
    async with engine_rig(sim={"speed": 3600.0}, healthy=False) as rig:
        code = await rig.task
        assert code == 2
        assert rig.engine.ops.bound_port is None  # it never got as far as serving


async def test_a_reconciler_failing_on_every_pass_turns_health_red_within_its_bound() -> None:
    settings = {"reconcile": {"interval_s": 60.0, "max_age_s": 120.0, "max_failures": 1000}}
    async with engine_rig(settings=settings) as rig:
        await rig.admin.inject(
            "fail_requests", path="/fapi/v3/account", count=100_000, status=400, code=-1021,
            msg="Timestamp for this request is outside of the recvWindow.",
        )  # fmt: skip
        await rig.admin.inject("drop_ws", scope="user")  # the reconnect asks for a pass, which fails

        async def red() -> bool:
            status, body = await rig.get("/health")
            return status == 503 and any("reconcile" in r for r in body["reasons"])

        took = await until(red, 300.0, "/health red for the reconciler", step=1.0)
        assert took <= 180  # within max_age_s of the last good pass, plus one check


async def test_start_up_waits_out_an_exchange_that_refuses_connections_then_runs() -> None:
    # The exchange answers 5xx for its first requests (a flaky network at boot): start-up waits.
    async with running_sim() as server, SimAdmin(server.rest_url) as admin:
        await admin.inject("fail_requests", path="/fapi/v1/exchangeInfo", count=4, status=503, code=-1008,
                           msg="Server is currently overloaded with other requests.")  # fmt: skip
        engine = Engine(_settings(server.rest_url))
        task = asyncio.create_task(engine.run())
        await until(lambda: engine.ops.bound_port is not None or task.done(), 120.0, "engine up after retries")
        assert not task.done()
        faults = await admin.faults()
        assert faults[0]["hits"] == 4  # it kept asking, and got through on the fifth try
        engine.request_stop("test")
        assert await task == 0


async def test_start_up_gives_up_after_its_timeout_with_exit_1_and_says_why() -> None:
    async with running_sim() as server, SimAdmin(server.rest_url) as admin:
        await admin.inject("fail_requests", path="/fapi/v1/exchangeInfo", count=10_000, status=503, code=-1008,
                           msg="Server is currently overloaded with other requests.")  # fmt: skip
        engine = Engine(_settings(server.rest_url, engine={"startup_timeout_s": 60.0}))
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await engine.run() == EXIT_FAILED
        assert 60.0 <= loop.time() - started < 90.0


async def test_a_signal_during_start_up_stops_it_at_once_with_130() -> None:
    async with running_sim() as server, SimAdmin(server.rest_url) as admin:
        await admin.inject("fail_requests", path="/fapi/v1/exchangeInfo", count=10_000, status=503, code=-1008,
                           msg="Server is currently overloaded with other requests.")  # fmt: skip
        engine = Engine(_settings(server.rest_url))
        task = asyncio.create_task(engine.run())
        await asyncio.sleep(20)  # retrying
        loop = asyncio.get_running_loop()
        asked = loop.time()
        engine.request_stop("SIGINT")
        assert await task == EXIT_INTERRUPTED
        assert loop.time() - asked < 1.0


async def test_a_key_binance_refuses_stops_start_up_at_once_with_exit_3() -> None:
    async with running_sim() as server:
        engine = Engine(_settings(server.rest_url, api_key="not-a-key-of-this-exchange", api_secret="whatever-secret"))
        lines: list[str] = []
        sink = logger.add(lambda m: lines.append(str(m)), level="ERROR")
        try:
            assert await engine.run() == EXIT_AUTH
        finally:
            logger.remove(sink)
        text = "".join(lines)
        assert "-2015" in text and "Enable Futures" in text and "whitelist" in text
        assert text.count("Binance refused the API key") == 1


async def test_a_key_revoked_while_running_stops_the_engine_with_exit_3() -> None:
    async with engine_rig(healthy=True) as rig:
        await rig.admin.inject("fail_requests", path="/fapi/v3/account", count=100, status=401, code=-2015,
                               msg="Invalid API-key, IP, or permissions for action.")  # fmt: skip
        await rig.admin.inject("drop_ws", scope="user")  # the reconnect asks for a reconcile pass
        assert await rig.task == EXIT_AUTH


async def test_shutdown_with_an_unreachable_exchange_ends_in_time_with_exit_0_and_a_warning() -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")
    try:
        async with engine_rig(settings={"engine": {"shutdown_timeout_s": 5.0}}) as rig:
            await rig.sim.stop()  # the exchange is gone
            loop = asyncio.get_running_loop()
            asked = loop.time()
            assert await rig.stop() == 0
            assert loop.time() - asked <= 6.0
    finally:
        logger.remove(sink)
    assert any("listenKey could not be closed" in line or ("listenKey" in line and "close failed" in line) for line in lines)


def _settings(url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "profile": "sim",
        "symbols": ["BTCUSDT"],
        "sim": {"url": url},
        "ops": {"port": 0},
        "market": {"history_candles": 100},
        "journal": {"path": str(Path(tempfile.mkdtemp(prefix="aegis-test-")) / "journal.sqlite")},
        **extra,
    }
    return Settings(**values)


async def test_a_rest_ban_never_freezes_the_account_view_and_health_says_why() -> None:
    # The probe: a 418 for 40 s, then a dropped user socket, then an out-of-band trade.
    async with engine_rig() as rig:
        await rig.admin.trade(DEMO_API_KEY, "BTCUSDT", "BUY", "0.010")
        await _wait_position(rig, Decimal("0.010"))
        await rig.admin.inject("rate_limit", seconds=40, status=418)
        await rig.admin.inject("drop_ws", scope="user")  # the reconnect asks for a pass that waits out the ban
        await asyncio.sleep(2)
        await rig.admin.trade(DEMO_API_KEY, "BTCUSDT", "BUY", "0.020")
        await _wait_position(rig, Decimal("0.030"), within=5.0)  # during the ban, from the stream
        status, body = await rig.get("/health")
        assert status == 503 and any("REST paused until" in r for r in body["reasons"]), body
        await asyncio.sleep(60)  # the ban ends; the reconciler's pass goes through
        await rig.healthy(within=60)
        await _wait_position(rig, Decimal("0.030"))


async def test_a_symbol_whose_newest_candle_is_too_old_is_unhealthy_whatever_the_socket_says() -> None:
    # The exchange's clock jumped back (a restarted simulator): the stream stays open, no candle closes.
    settings = {"market": {"candle_stale_after_s": 120.0}}
    async with engine_rig(settings=settings) as rig:
        await rig.admin.inject("clock_jump", ms=-3_600_000)
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def reasons() -> list[str]:
            return list((await rig.get("/health"))[1]["reasons"])

        while not any("newest closed candle too old" in r or "clock offset" in r for r in await reasons()):
            assert loop.time() - started < 300, await reasons()
            await asyncio.sleep(5)


async def _wait_position(rig: Any, amount: Decimal, within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        positions = (await rig.get("/state"))[1]["positions"]
        if [Decimal(p["amount"]) for p in positions] == [amount]:
            return
        assert loop.time() - started < within, positions
        await asyncio.sleep(0.2)
