"""The whole engine in this process against a simulator it is pointed at (``--sim-url``), on virtual time."""

from __future__ import annotations

from decimal import Decimal

from tests.harness import DEMO_API_KEY, exchange_sleep, until
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
