"""The strategy API inside the whole engine: intents become orders, a failing strategy is contained,
refusals are visible, --dry-run sends nothing, a bad strategy path is one configuration line."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from aegis.strategy.api import Context
from aegis.strategy.loader import StrategyError, load_strategy
from aegis.trading.intents import Intent, Outcome
from tests.harness import DEMO_API_KEY
from tests.rigs import EngineRig, engine_rig


class Alternating:
    """Buys on one candle, closes on the next: an order every minute."""

    name = "alternating"
    window = 5

    def __init__(self, fail_every: int = 0, notional: str = "150") -> None:
        self.fail_every = fail_every
        self.notional = Decimal(notional)
        self.seen = 0

    def on_candle(self, ctx: Context) -> Intent | None:
        self.seen += 1
        if self.fail_every and self.seen % self.fail_every == 0:
            raise RuntimeError("a bug in the user's strategy")
        assert len(ctx.window) == self.window and ctx.window[-1] == ctx.candle
        return ctx.buy(notional=self.notional) if ctx.position == 0 else ctx.close()


async def _orders(rig: EngineRig) -> list[dict[str, object]]:
    """The orders the exchange accepted from the engine's account (the simulator's audit)."""
    rows = await rig.admin.audit(api_key=DEMO_API_KEY)
    return [r for r in rows if r["method"] == "POST" and r["path"] == "/fapi/v1/order" and "orderId" in r]


async def test_intents_become_orders_and_a_strategy_that_raises_is_skipped_not_fatal() -> None:
    strategy = Alternating(fail_every=3)
    async with engine_rig(strategy=strategy) as rig:
        await asyncio.sleep(10 * 60)  # ten candles
        assert rig.engine.runner is not None
        assert rig.engine.runner.errors >= 2 and rig.engine.runner.evaluations >= 8
        assert rig.engine.runner.outcomes[Outcome.PLACED] >= 4
        assert (await rig.get("/health"))[0] == 200  # still healthy
        assert len(await _orders(rig)) == rig.engine.runner.outcomes[Outcome.PLACED]


async def test_an_intent_the_risk_gate_refuses_is_counted_and_in_the_summary() -> None:
    settings = {"risk": {"max_order_notional": "100"}}
    async with engine_rig(strategy=Alternating(notional="150"), settings=settings) as rig:
        await asyncio.sleep(3 * 60)
        assert rig.engine.trader is not None
        assert rig.engine.trader.orders.refusals["max_order_notional"] >= 2
        assert await _orders(rig) == []
    summary = rig.engine.summary
    assert summary is not None and summary.refusals.get("max_order_notional", 0) >= 2


async def test_dry_run_places_no_order_and_journals_what_it_would_have_sent() -> None:
    async with engine_rig(strategy=Alternating(), dry_run=True) as rig:
        await asyncio.sleep(5 * 60)
        assert rig.engine.runner is not None and rig.engine.runner.outcomes[Outcome.DRY] >= 3
        assert await _orders(rig) == []
        assert rig.engine.journal is not None
        intents = await rig.engine.journal.intents()
        assert intents
        for intent in intents:
            kinds = [event.kind for event in await rig.engine.journal.events(intent.client_id)]
            assert kinds == ["dry"], kinds


def test_a_bad_strategy_path_or_parameter_is_one_configuration_line() -> None:
    with pytest.raises(StrategyError, match=r"strategy.path: cannot import 'no.such.module'"):
        load_strategy("no.such.module:Thing", {})
    with pytest.raises(StrategyError, match=r"has no 'Nope'"):
        load_strategy("aegis.strategy.examples.rsi_reversion:Nope", {})
    with pytest.raises(StrategyError, match=r"strategy.params: RsiReversion refused them"):
        load_strategy("aegis.strategy.examples.rsi_reversion:RsiReversion", {"oversold": 80})
    with pytest.raises(StrategyError, match=r"strategy.params"):
        load_strategy("aegis.strategy.examples.rsi_reversion:RsiReversion", {"no_such_param": 1})
    strategy = load_strategy("tests.test_strategy:Alternating", {"fail_every": 0})  # a user's own module
    assert strategy.name == "alternating"
