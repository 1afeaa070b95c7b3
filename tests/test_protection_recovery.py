"""Protective orders when the market or the engine moved on (found by the soak).

* A stop or take-profit whose level the market has already passed when the entry fills (a fast
  market, a late fill) cannot be placed: Binance answers -2021 "Order would immediately trigger".
  The keeper logged "the position stays as it is" at every look and left the position without
  protection; it now does what the order would have done: close the position at the market.
* The keeper's memory of which protection belongs to which position lives in the process. After a
  restart, the stop and take-profit of a position opened by the earlier life stay on the exchange
  (as they should), but when one of them closed the position the other one stayed open forever:
  a closePosition order that would close the next position on that symbol at a stale level. Such
  left-over orders on a flat symbol are now cancelled.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from aegis.domain import Side
from aegis.trading.intents import Outcome
from tests.harness import DEMO_API_KEY, until
from tests.rigs import SYMBOL
from tests.trading_rig import trading_rig


async def test_a_stop_level_the_market_already_passed_closes_the_position_at_the_market(tmp_path: Path) -> None:
    async with trading_rig(tmp_path) as rig:
        price = await rig.price()
        passed = (price * Decimal("1.01")).quantize(Decimal("0.1"))  # a long's stop above the market
        sub = await rig.market(Side.BUY, "0.002", "late", stop_price=passed)
        assert sub.outcome is Outcome.PLACED
        await until(lambda: rig.account.store_position() == 0 and rig.trader.ledger.fills >= 2, 60.0, "closed")
        assert await rig.account.position() == 0
        audit = await rig.account.admin.audit(DEMO_API_KEY)
        assert [r.get("code") for r in audit if r["http_status"] != 200] == []  # nothing sent that would trigger
        closes = [r for r in audit if r["path"] == "/fapi/v1/order" and r["params"].get("reduceOnly") == "true"]
        assert len(closes) == 1 and closes[0]["params"]["side"] == "SELL"


async def test_protective_orders_left_by_an_earlier_life_are_cancelled_once_their_position_is_flat(
    tmp_path: Path,
) -> None:
    async with trading_rig(tmp_path) as rig:
        price = await rig.price()
        stop, take = (price * Decimal("0.98")).quantize(Decimal("0.1")), (price * Decimal("1.02")).quantize(Decimal("0.1"))
        await rig.market(Side.BUY, "0.002", "earlier-life", stop_price=stop, take_profit=take)
        await until(lambda: len(rig.account.state.open_algo_orders(SYMBOL)) == 2, 30.0, "stop and take-profit")
        rig.trader.protection.wanted.clear()  # a restarted engine does not know whose they are
        await rig.account.trade("SELL", "0.002")  # the position closes (as by one of its legs)
        await until(lambda: rig.account.store_position() == 0, 30.0, "flat")
        await until(lambda: rig.account.state.open_algo_orders(SYMBOL) == [], 60.0, "left-overs cancelled")
        assert (await rig.account.truth())["open_algo_orders"] == []


async def test_the_protection_of_an_open_position_from_an_earlier_life_stays(tmp_path: Path) -> None:
    async with trading_rig(tmp_path) as rig:
        price = await rig.price()
        stop = (price * Decimal("0.98")).quantize(Decimal("0.1"))
        await rig.market(Side.BUY, "0.002", "still-open", stop_price=stop)
        await until(lambda: len(rig.account.state.open_algo_orders(SYMBOL)) == 1, 30.0, "stop")
        rig.trader.protection.wanted.clear()
        await asyncio.sleep(60.0)  # a minute of exchange time: the keeper looks a dozen times
        assert len((await rig.account.truth())["open_algo_orders"]) == 1
        assert rig.trader.protection.cancelled == 0
