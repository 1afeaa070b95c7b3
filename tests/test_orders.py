"""The order manager against the simulator: every intent becomes exactly one exchange order, whatever
the exchange answers (or fails to answer), and the journal knows every one."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from aegis.domain import OrderStatus, Side
from aegis.trading.clientid import client_id, is_ours
from aegis.trading.intents import Intent, Outcome
from tests.harness import DEMO_API_KEY, until
from tests.trading_rig import TradingRig, settled, trading_rig

SYMBOL = "BTCUSDT"


def exchange_orders(rig: TradingRig) -> list[tuple[str, int]]:
    """(client id, order id) of every order the simulator holds for our account: the ground truth."""
    account = rig.account.sim.sim.exchange.accounts[DEMO_API_KEY]
    return [(o.client_order_id, o.order_id) for o in account.orders.values()]


def test_client_ids_are_derived_from_the_intent_valid_for_binance_and_ours() -> None:
    a = client_id("rsi", "BTCUSDT", "candle:1746372780000", "entry")
    assert a == client_id("rsi", "BTCUSDT", "candle:1746372780000", "entry")  # a retry carries the same id
    assert a != client_id("rsi", "BTCUSDT", "candle:1746372840000", "entry")
    assert a != client_id("rsi", "BTCUSDT", "candle:1746372780000", "stop")
    import re

    assert re.fullmatch(r"[\.A-Z\:/a-z0-9_-]{1,36}", a) and is_ours(a)
    assert not is_ours("android_MLA5BSDBdSD12WPlEyMh") and not is_ours("autoclose-1700000000")


async def test_a_market_intent_is_placed_filled_and_journaled_once(tmp_path: Path) -> None:
    async with trading_rig(tmp_path) as rig:
        sub = await rig.market(Side.BUY, "0.002", "c1")
        assert sub.outcome is Outcome.PLACED and sub.order is not None
        await until(lambda: rig.account.store_position() == Decimal("0.002"), 5.0, "position")
        await settled(rig)
        assert [cid for cid, _ in exchange_orders(rig)] == [sub.client_id]
        events = [e.kind for e in await rig.journal.events(sub.client_id)]
        assert events[0] == "acked" and "closed" in events
        assert await rig.journal.in_flight() == []
        fills = await rig.journal.fills()
        assert len(fills) >= 1 and {f.client_order_id for f in fills} == {sub.client_id}
        # The same intent again (a replay) is not sent again.
        again = await rig.market(Side.BUY, "0.002", "c1")
        assert again.outcome is Outcome.DUPLICATE and len(exchange_orders(rig)) == 1


async def test_a_rejection_is_reported_with_its_code_and_never_retried(tmp_path: Path) -> None:
    async with trading_rig(tmp_path) as rig:
        await rig.account.admin.inject(
            "fail_requests", path="/fapi/v1/order", method="POST", count=1, status=400, code=-2019, msg="Margin is insufficient."
        )
        sub = await rig.market(Side.BUY, "0.002", "c1")
        assert sub.outcome is Outcome.REJECTED and sub.code == -2019 and "Margin is insufficient" in str(sub.reason)
        assert exchange_orders(rig) == [] and rig.trader.orders.rejections[-2019] == 1
        assert [e.kind for e in await rig.journal.events(sub.client_id)] == ["rejected"]
        assert await rig.journal.in_flight() == []


async def test_retryable_failures_are_sent_again_with_the_same_client_id(tmp_path: Path) -> None:
    async with trading_rig(tmp_path) as rig:
        await rig.account.admin.inject(
            "fail_requests", path="/fapi/v1/order", method="POST", count=2, status=503, code=-1008,
            msg="Server is currently overloaded with other requests. Please try again in a few minutes.",
        )  # fmt: skip
        sub = await rig.market(Side.BUY, "0.002", "c1")
        assert sub.outcome is Outcome.PLACED and rig.trader.orders.retries == 2
        assert [cid for cid, _ in exchange_orders(rig)] == [sub.client_id]


@pytest.mark.parametrize("mode", ["timeout", "503", "-1007"])
async def test_an_order_that_landed_but_whose_answer_was_lost_is_found_not_sent_twice(tmp_path: Path, mode: str) -> None:
    async with trading_rig(tmp_path) as rig:
        await rig.account.admin.inject("unknown_outcome", path="/fapi/v1/order", count=1, mode=mode, hold_s=15)
        sub = await rig.market(Side.BUY, "0.002", "c1")
        assert sub.outcome is Outcome.PLACED, sub
        assert [cid for cid, _ in exchange_orders(rig)] == [sub.client_id]
        assert rig.trader.orders.unknown["found"] == 1
        kinds = [e.kind for e in await rig.journal.events(sub.client_id)]
        assert "unknown" in kinds and kinds.index("unknown") < kinds.index("acked")  # the stream may close it first


async def test_an_order_that_never_landed_is_sent_again_with_the_same_id_after_the_window(tmp_path: Path) -> None:
    async with trading_rig(tmp_path) as rig:
        # 503 "Unknown error": Binance's "the outcome is unknown" answer, here for a request it dropped.
        await rig.account.admin.inject(
            "fail_requests", path="/fapi/v1/order", method="POST", count=1, status=503, code=-1000,
            msg="Unknown error, please check your request or try again later.",
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        started = loop.time()
        sub = await rig.market(Side.BUY, "0.002", "c1")
        assert sub.outcome is Outcome.PLACED
        assert loop.time() - started >= 30.0  # it looked for the whole window before sending again
        assert [cid for cid, _ in exchange_orders(rig)] == [sub.client_id]
        assert rig.trader.orders.unknown["absent"] == 1
        kinds = [e.kind for e in await rig.journal.events(sub.client_id)]
        assert kinds.index("unknown") < kinds.index("absent") < kinds.index("acked")


async def test_a_thousand_intents_under_lost_answers_give_a_thousand_orders_and_no_duplicate(tmp_path: Path) -> None:
    rnd = random.Random(11)
    async with trading_rig(tmp_path, risk={"max_orders_per_minute": 1200}) as rig:
        admin = rig.account.admin
        intents = 1000
        for i in range(intents):
            roll = rnd.random()
            if roll < 0.03:
                await admin.inject("unknown_outcome", path="/fapi/v1/order", count=1, mode=rnd.choice(["timeout", "503", "-1007"]), hold_s=12)
            elif roll < 0.05:
                await admin.inject(
                    "fail_requests", path="/fapi/v1/order", method="POST", count=1, status=503, code=-1000,
                    msg="Unknown error, please check your request or try again later.",
                )  # fmt: skip
            elif roll < 0.07:
                await admin.inject(
                    "fail_requests", path="/fapi/v1/order", method="POST", count=1, status=503, code=-1008,
                    msg="Server is currently overloaded with other requests. Please try again in a few minutes.",
                )  # fmt: skip
            side = Side.BUY if i % 2 == 0 else Side.SELL
            sub = await rig.market(side, "0.002", f"stress-{i}")
            assert sub.outcome is Outcome.PLACED, (i, sub)
            await asyncio.sleep(0.05)
        await settled(rig)
        orders = exchange_orders(rig)
        per_id = Counter(cid for cid, _ in orders)
        assert len(orders) == intents and max(per_id.values()) == 1
        assert sorted(per_id) == sorted(client_id("test", SYMBOL, f"stress-{i}") for i in range(intents))
        assert await rig.journal.in_flight() == []
        await until(lambda: rig.account.requests.pending == 0, 60.0)
        await rig.account.assert_matches_exchange()


async def test_a_protective_stop_rests_on_the_exchange_and_closes_the_position_without_the_engine(tmp_path: Path) -> None:
    async with trading_rig(tmp_path) as rig:
        price = await rig.price()
        stop = (price * Decimal("0.999")).quantize(Decimal("0.1"))
        sub = await rig.market(Side.BUY, "0.002", "c1", stop_price=stop)
        assert sub.outcome is Outcome.PLACED
        await until(lambda: bool(rig.account.state.open_algo_orders(SYMBOL)), 30.0, "stop on the exchange")
        algo = rig.account.state.open_algo_orders(SYMBOL)[0]
        assert algo.close_position and algo.side is Side.SELL and algo.trigger_price <= stop
        truth = await rig.account.truth()
        assert [a["clientAlgoId"] for a in truth["open_algo_orders"]] == [algo.client_algo_id]
        # The engine goes away (no stream, no keeper); exchange time passes until the price falls through.
        rig.trader.protection.wanted.clear()
        await rig.account.stream.close()
        for _ in range(600):
            if await rig.account.position() == 0:
                break
            await rig.account.admin.inject("clock_jump", ms=60_000)
        assert await rig.account.position() == 0, "the stop never triggered in 10 hours of candles"
        assert (await rig.account.truth())["open_algo_orders"] == []
        # The engine comes back: its first reconciliation adopts what happened meanwhile.
        assert rig.account.reconciler is not None
        report = await rig.account.reconciler.reconcile("engine back")
        assert rig.account.store_position() == 0, report and rig.account.state.open_algo_orders() == []


async def test_dry_run_sizes_checks_and_journals_but_never_sends(tmp_path: Path) -> None:
    async with trading_rig(tmp_path, dry_run=True) as rig:
        sub = await rig.market(Side.BUY, "0.002", "c1")
        assert sub.outcome is Outcome.DRY and exchange_orders(rig) == []
        assert [e.kind for e in await rig.journal.events(sub.client_id)] == ["dry"]


async def test_the_risk_gate_refuses_and_the_kill_switch_stops_new_orders(tmp_path: Path) -> None:
    async with trading_rig(tmp_path, risk={"max_order_notional": Decimal("150")}) as rig:
        too_big = await rig.market(Side.BUY, "0.010", "big")
        assert too_big.outcome is Outcome.REFUSED and "max_order_notional" in str(too_big.reason)
        assert exchange_orders(rig) == []
        rig.trader.kill("test")
        killed = await rig.market(Side.BUY, "0.001", "small")
        assert killed.outcome is Outcome.REFUSED and "kill_switch" in str(killed.reason)
        assert rig.trader.clear_kill("test")
        ok = await rig.market(Side.BUY, "0.001", "small-2")
        assert ok.outcome is Outcome.PLACED


async def test_a_target_position_is_reached_with_one_order_and_nothing_more(tmp_path: Path) -> None:
    async with trading_rig(tmp_path) as rig:
        await rig.price()
        sub = await rig.trader.execute(Intent("test", SYMBOL, "t1", target_position=Decimal("0.003")))
        assert sub.outcome is Outcome.PLACED
        await until(lambda: rig.account.store_position() == Decimal("0.003"), 5.0)
        same = await rig.trader.execute(Intent("test", SYMBOL, "t2", target_position=Decimal("0.003")))
        assert same.outcome is Outcome.NOTHING
        flat = await rig.trader.execute(Intent("test", SYMBOL, "t3", target_position=Decimal("0")))
        assert flat.outcome is Outcome.PLACED and flat.order is not None and flat.order.reduce_only
        await until(lambda: rig.account.store_position() == 0, 5.0)
        assert all(o.status is OrderStatus.FILLED for o in [sub.order, flat.order] if o is not None)
