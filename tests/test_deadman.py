"""The dead man's switch: while the engine runs, its resting orders stay; once it is gone, the
exchange cancels them after the countdown and leaves the protective stop in place."""

from __future__ import annotations

from decimal import Decimal

from aegis.binance import BinanceRest
from aegis.domain import OrderType, Side
from aegis.trading.intents import Intent, Outcome
from tests.harness import exchange_sleep, rest_for, until
from tests.rigs import engine_rig

COUNTDOWN_S = 60.0


async def test_resting_orders_outlive_heartbeats_and_not_the_engine_while_its_stop_stays() -> None:
    async with engine_rig(settings={"orders": {"countdown_cancel_s": COUNTDOWN_S}}) as rig:
        trader = rig.engine.trader
        assert trader is not None
        market = rig.engine.market
        assert market is not None
        await until(lambda: trader.ready.is_set() and market.last_price("BTCUSDT") is not None, 60.0, "trading ready")
        price = rig.sim.sim.market.price("BTCUSDT")
        entry = await trader.execute(
            Intent("test", "BTCUSDT", "entry", Side.BUY, notional=Decimal("200"),
                   stop_price=(price * Decimal("0.9")).quantize(Decimal("0.1")))
        )  # fmt: skip
        await until(lambda: rig.engine.state.position("BTCUSDT") is not None, 30.0, "the entry's position shown")
        resting = await trader.execute(
            Intent("test", "BTCUSDT", "resting", Side.BUY, quantity=Decimal("0.002"), type=OrderType.LIMIT,
                   price=(price * Decimal("0.8")).quantize(Decimal("0.1")))
        )  # fmt: skip
        assert entry.outcome is Outcome.PLACED and resting.outcome is Outcome.PLACED
        async with rest_for(rig.sim) as rest:
            await until(lambda: _one_stop(rest), 30.0, "protective stop on the exchange")
            await exchange_sleep(rig.sim, 5 * COUNTDOWN_S)  # heartbeats keep the resting order alive
            assert [o.client_order_id for o in await rest.open_orders("BTCUSDT")] == [resting.client_id]
            beats = [r for r in await rig.admin.audit() if r["path"] == "/fapi/v1/countdownCancelAll"]
            assert len(beats) >= 5 and all(r["params"]["countdownTime"] == "60000" for r in beats)

            assert await rig.stop() == 0  # the engine is gone: nobody renews the countdown
            await exchange_sleep(rig.sim, COUNTDOWN_S + 5)
            assert await rest.open_orders("BTCUSDT") == []  # the exchange cancelled the resting entry
            assert len(await rest.open_algo_orders("BTCUSDT")) == 1  # the stop still protects the position


async def _one_stop(rest: BinanceRest) -> bool:
    return len(await rest.open_algo_orders("BTCUSDT")) == 1
