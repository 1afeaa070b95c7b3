"""A long randomized run over many symbols of the real exchangeInfo: intents with off-grid
quantities, notionals and prices, market and limit, with and without protective stops, go through
the whole order path to the simulator. Whatever sizing lets through, the exchange accepts: zero
rejections for precision or filters, counted from the exchange's own audit."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path

from aegis.domain import OrderType, Side
from aegis.trading.filters import FILTER_CODES
from aegis.trading.intents import Intent, Outcome
from tests.harness import DEMO_API_KEY
from tests.trading_rig import TradingRig, trading_rig

SEED = 20261201
SYMBOLS = 60
INTENTS = 900
# Besides the filter codes: a stop on the wrong side, and malformed or unsupported parameters.
FORBIDDEN = FILTER_CODES | {-2021, -1102, -1106, -1111, -1116, -1130}
OPEN = {"max_position_notional": Decimal(0), "max_total_notional": Decimal(0), "max_order_notional": Decimal(0),
        "max_orders_per_minute": 1200, "max_leverage": 20}  # fmt: skip


def _odd(rng: random.Random, low: float, high: float) -> Decimal:
    """A positive number with more decimals than any filter allows (or a round one, sometimes)."""
    value = rng.uniform(low, high)
    return Decimal(str(round(value))) if rng.random() < 0.1 and value >= 1 else Decimal(f"{value:.12f}")


def _intent(rng: random.Random, n: int, symbol: str, price: Decimal) -> Intent:
    side = rng.choice((Side.BUY, Side.SELL))
    kind = rng.choice(("market_notional", "market_qty", "limit", "limit", "close"))
    cause = f"r{n}"
    if kind == "close":
        return Intent("random", symbol, cause, target_position=Decimal(0))
    away = Decimal(f"{rng.uniform(-0.25, 0.25):.9f}")  # some limits outside PERCENT_PRICE: sizing refuses them
    stop = None
    if kind == "market_notional" and rng.random() < 0.5:
        stop = price * (Decimal("0.95") if side is Side.BUY else Decimal("1.05")) + _odd(rng, 0, 1)
    if kind == "market_notional":
        return Intent("random", symbol, cause, side, notional=_odd(rng, 2, 400), stop_price=stop)
    quantity = _odd(rng, 0, 1) * Decimal(400) / price
    if kind == "market_qty":
        return Intent("random", symbol, cause, side, quantity=quantity)
    limit = price * (1 + away)
    return Intent("random", symbol, cause, side, quantity=quantity, type=OrderType.LIMIT, price=limit)


async def _tidy(rig: TradingRig, symbols: list[str]) -> None:
    """Cancel resting orders and flatten, so margin stays free for the next round."""
    for symbol in symbols:
        await rig.account.rest.cancel_all_orders(symbol)
        await rig.account.rest.cancel_all_algo_orders(symbol)
        await rig.price(symbol)
        await rig.trader.execute(Intent("random", symbol, f"tidy{rig.trader.orders.outcomes.total()}", target_position=Decimal(0)))


async def test_a_long_randomized_run_gets_no_rejection_for_precision_or_filters(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    async with trading_rig(tmp_path, risk=OPEN) as rig:
        info = await rig.account.rest.exchange_info()
        tradable = sorted(s for s, f in info.symbols.items() if f.trading and f.contract_type == "PERPETUAL" and f.quote_asset == "USDT")
        symbols = rng.sample(tradable, SYMBOLS)
        outcomes: Counter[Outcome] = Counter()
        for n in range(INTENTS):
            symbol = rng.choice(symbols)
            sub = await rig.trader.execute(_intent(rng, n, symbol, await rig.price(symbol)))
            outcomes[sub.outcome] += 1
            await asyncio.sleep(0.2)  # exchange time passes: prices move, rate windows roll
            if n % 100 == 99:
                await _tidy(rig, sorted({symbol for symbol in symbols}))
        rows = await rig.account.admin.audit(api_key=DEMO_API_KEY)
    codes = Counter(r.get("code") for r in rows if "code" in r)
    assert not {c: n for c, n in codes.items() if c in FORBIDDEN}, codes
    assert outcomes[Outcome.PLACED] >= INTENTS // 3, outcomes  # it really traded
    assert outcomes[Outcome.REFUSED] > 0, outcomes  # and sizing refused what the exchange would have rejected
