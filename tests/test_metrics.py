"""GET /metrics: what an operator's Prometheus sees of a whole engine against the simulator.

Each test makes something happen on the exchange (trades, dropped sockets, a ban, a rejection)
and reads the scrape the way Prometheus would; counters are compared with the simulator's own
audit or with what the engine reports on /state, never with a number the test made up.
"""

from __future__ import annotations

import asyncio

from aegis.sim.config import AccountSpec
from tests.harness import DEMO_API_KEY, until
from tests.metrics_scrape import Scrape, scrape
from tests.rigs import engine_rig
from tests.test_strategy import Alternating


async def _placed_orders(rig: object) -> int:
    rows = await rig.admin.audit(api_key=DEMO_API_KEY)  # type: ignore[attr-defined]
    return sum(1 for r in rows if r["method"] == "POST" and r["path"] == "/fapi/v1/order" and "orderId" in r)


async def test_a_trading_session_shows_in_the_scrape_as_the_exchange_saw_it() -> None:
    async with engine_rig(strategy=Alternating()) as rig:
        await asyncio.sleep(6 * 60)  # six closed candles: an order on each
        m = await scrape(rig.ops_url)
        placed = await _placed_orders(rig)
        assert placed >= 4
        assert m.value("aegis_orders_total", outcome="placed") == placed
        assert m.value("aegis_order_rejections_total") == 0
        # every order answered a candle the stream delivered: its reaction time was measured once
        assert m.value("aegis_tick_to_trade_seconds_count") == placed
        assert m.value("aegis_tick_to_trade_seconds_bucket", le="+Inf") == placed
        runner = rig.engine.runner
        assert runner is not None
        assert m.value("aegis_strategy_evaluation_seconds_count") == runner.evaluations
        assert m.value("aegis_strategy_evaluations_total") == runner.evaluations
        assert m.value("aegis_journal_write_seconds_count") >= 2 * placed  # intent + ack each
        assert m.value("aegis_market_candles_received_total", symbol="BTCUSDT") >= 6
        assert m.value("aegis_market_backfill_candles_total") >= 100  # the warm-up
        assert m.value("aegis_market_backfill_weight_total", purpose="warmup") > 0
        assert m.value("aegis_market_symbol_ready", symbol="BTCUSDT") == 1
        assert 0 <= m.value("aegis_market_last_candle_age_seconds", symbol="BTCUSDT") < 120
        assert m.value("aegis_reconcile_passes_total", result="clean") >= 1
        assert m.value("aegis_user_events_total") >= placed  # each order's own events came back
        assert m.value("aegis_stream_connections", stream="user", state="up") == 1
        assert m.value("aegis_stream_connections", stream="market", state="up") == 1
        assert m.value("aegis_healthy") == 1 and m.value("aegis_health_problems") == 0
        assert m.value("aegis_info", profile="sim") == 1
        assert m.value("aegis_rest_budget_limit", budget="weight_1m") > 0


async def test_disconnects_bans_and_rejections_are_counted_by_cause() -> None:
    async with engine_rig(strategy=Alternating()) as rig:
        before = await scrape(rig.ops_url)
        await rig.admin.inject("drop_ws", scope="all")
        await rig.admin.inject(
            "fail_requests", path="/fapi/v1/order", method="POST", count=1, status=400, code=-2019, msg="Margin is insufficient."
        )  # fmt: skip

        async def counted() -> bool:
            m = await scrape(rig.ops_url)
            return m.value("aegis_order_rejections_total", code="-2019") == 1 and (
                m.total("aegis_stream_disconnects_total", stream="user") > 0
            )

        await until(counted, 5 * 60, "a rejection and a user-stream disconnect in the scrape", step=5.0)
        m = await scrape(rig.ops_url)
        for stream in ("market", "user"):
            assert m.total("aegis_stream_disconnects_total", stream=stream) > before.total(
                "aegis_stream_disconnects_total", stream=stream
            ), stream
        assert m.value("aegis_orders_total", outcome="rejected") == 1

        await rig.admin.inject("rate_limit", seconds=30, status=429)
        await rig.admin.inject("drop_ws", scope="user")  # the reconnect asks for a pass: REST meets the 429

        async def limited() -> bool:
            s = await scrape(rig.ops_url)
            return s.value("aegis_rest_rate_limited_total", status="429") >= 1

        await until(limited, 120, "a 429 in the scrape", step=1.0)
        assert (await scrape(rig.ops_url)).value("aegis_rest_pauses_total") >= 1


async def test_two_engines_in_one_process_never_share_a_series() -> None:
    async with engine_rig() as quiet, engine_rig() as busy:
        await busy.admin.inject("drop_ws", scope="user")
        await until(
            lambda: busy.engine.user is not None and busy.engine.user.reconnects >= 1, 60, "busy reconnected"
        )
        a, b = await scrape(quiet.ops_url), await scrape(busy.ops_url)
        assert a.total("aegis_stream_disconnects_total", stream="user") == 0
        assert b.total("aegis_stream_disconnects_total", stream="user") >= 1
        assert quiet.engine.metrics.registry is not busy.engine.metrics.registry


KEY = "mEtRiCs-KeY-0123456789abcdef"
SECRET = "mEtRiCs-SeCrEt-fedcba9876543210"


async def test_no_secret_ever_reaches_the_scrape() -> None:
    sim = {"accounts": (AccountSpec(KEY, SECRET),)}
    async with engine_rig(sim=sim, settings={"api_key": KEY, "api_secret": SECRET}) as rig:
        await rig.admin.trade(KEY, "BTCUSDT", "BUY", "0.010")
        await rig.admin.inject("drop_ws", scope="user")
        await asyncio.sleep(60)
        text = (await scrape(rig.ops_url)).text
        assert rig.engine.user is not None and rig.engine.user.keeper.key
        for secret in (KEY, SECRET, rig.engine.user.keeper.key, rig.sim.rest_url):
            assert secret not in text


async def test_the_scrape_is_valid_prometheus_text_with_units_and_bounded_labels() -> None:
    async with engine_rig() as rig:
        m: Scrape = await scrape(rig.ops_url)
        for name, kind in m.families.items():
            assert name.startswith("aegis_"), name
            if kind == "histogram":
                assert name.endswith("_seconds"), name
        labels = {key for samples in m.samples.values() for got, _ in samples for key in got}
        assert labels <= {"symbol", "stream", "state", "cause", "outcome", "code", "reason", "resolution",
                          "result", "kind", "budget", "status", "purpose", "task", "why", "profile",
                          "version", "le"}  # fmt: skip
        symbols = {got["symbol"] for samples in m.samples.values() for got, _ in samples if "symbol" in got}
        assert symbols == {"BTCUSDT"}  # only the configured ones
