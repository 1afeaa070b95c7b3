"""Sizing against ccxt's ``amount_to_precision`` / ``price_to_precision``, on the same exchangeInfo.

ccxt's ``binanceusdm`` markets are built offline from the recorded payloads (``parse_markets`` on
their ``symbols``, then ``set_markets``: no network), and addressed by Binance id (testnet has
two ids, IDOL and IDOLUSDT, for one unified symbol).

Where ccxt applies the same rule as ``aegis.trading.sizing``, the results are equal, and this
module proves it on every symbol of both files:

- Quantities: ccxt truncates toward zero to a multiple of LOT_SIZE's stepSize counted from 0 (its
  ``precision.amount``); Binance's grid, and ours, is counted from minQty. The two grids are the
  same whenever minQty is a multiple of stepSize, which holds for all 1,007 recorded symbols,
  so for every positive quantity at least one step, the results are equal. MARKET_LOT_SIZE
  has the same step as LOT_SIZE on every recorded symbol, so this holds for market orders too.
- Prices: ccxt rounds half-up to the nearest multiple of tickSize counted from 0, whatever the
  side; we round BUY down and SELL up, on the grid counted from minPrice (a multiple of the tick
  on every recorded symbol). So the results are equal for a price on the grid, for a BUY price
  less than half a tick above a grid point, and for a SELL price at least half a tick above one.

Where they differ, by design:

- Direction: ccxt's nearest tick can make an order more aggressive than asked (a BUY at
  50000.06 on BTCUSDT's 0.1 tick is a 50000.1 bid for ccxt, 50000.0 for us; a SELL at 50000.04
  a 50000.0 ask for ccxt, 50000.1 for us). Triggers: we round toward the mark, ccxt does not
  know the mark.
- Grid origin: were a minQty / minPrice ever off the step / tick grid, Binance (and we) would
  count from it and ccxt from 0 (none of the recorded symbols does this; a unit test below shows
  the difference on a made-up filter).
- Market orders: ccxt has only LOT_SIZE's step for amounts; Binance checks MARKET_LOT_SIZE.
- Zero results: ccxt raises InvalidOrder when the amount truncates to 0; we refuse with -4003.
- tickSize 0 (testnet OPENUSDT): ccxt has no price precision and asserts; we round to
  pricePrecision decimals, past which Binance answers -1111.
- Floats: ccxt keeps stepSize / tickSize as floats (``safe_number``) and reads them back through
  ``str()``; exact for the recorded filter strings (short decimals), not for decimals in general.
  We never leave Decimal.
- Context: ccxt's ``decimal_to_precision`` sets ROUND_HALF_UP and traps Underflow on the calling
  thread's decimal context, at every call; sizing runs in its own context (tests/test_sizing.py).
- Scope: neither ccxt helper checks min/max quantity or price, PERCENT_PRICE or MIN_NOTIONAL.
"""

from __future__ import annotations

import decimal
import functools
from decimal import Decimal
from typing import Any

import ccxt
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.domain import OrderType, Side, SymbolFilters
from aegis.trading.sizing import SizedOrder, SizingRequest, round_price, round_quantity, size
from tests.fixtures import binance_obj
from tests.test_sizing_properties import VENUES, venue

D = Decimal


@functools.cache
def ccxt_exchange(venue_name: str) -> Any:
    """A ccxt binanceusdm whose markets come from the recorded payload, never from the network."""
    ex = ccxt.binanceusdm()
    ex.set_markets(ex.parse_markets(binance_obj(VENUES[venue_name])["symbols"]))
    return ex


SYMBOLS = [(v, s) for v in VENUES for s in sorted(venue(v)[0])]
TICKED = [(v, s) for v, s in SYMBOLS if venue(v)[0][s].tick_size > 0]


def ccxt_amount(venue_name: str, symbol: str, q: Decimal) -> Decimal:
    return D(ccxt_exchange(venue_name).amount_to_precision(symbol, format(q, "f")))


def ccxt_price(venue_name: str, symbol: str, p: Decimal) -> Decimal:
    return D(ccxt_exchange(venue_name).price_to_precision(symbol, format(p, "f")))


def toward_ccxt(p: Decimal, f: SymbolFilters) -> str:
    """The side whose rounding direction is ccxt's half-up choice for ``p``."""
    rem = p % f.tick_size  # p > 0; minPrice is on the tick grid, so this is the remainder on ours too
    return "down" if rem * 2 < f.tick_size else "up"


def multiples(step: Decimal) -> st.SearchStrategy[Decimal]:
    """Positive values of at least one step: k steps plus a fraction of a step (or none)."""
    return st.builds(
        lambda k, frac: step * k + step * D(frac).scaleb(-6),
        st.integers(1, 10**7),
        st.sampled_from([0, 0]) | st.integers(0, 999_999),
    )


# --- where the rules coincide, the results are equal ---------------------------------------------


def test_the_recorded_filters_put_min_qty_and_min_price_on_the_grid_ccxt_assumes() -> None:
    for v, s in SYMBOLS:
        f = venue(v)[0][s]
        assert f.min_qty % f.step_size == 0 and f.market_min_qty % f.market_step_size == 0, s
        assert f.step_size == f.market_step_size, s
        assert f.tick_size == 0 or f.min_price % f.tick_size == 0, s


def test_every_symbol_rounds_quantities_and_prices_as_ccxt_where_the_rules_coincide() -> None:
    for v, s in SYMBOLS:
        f = venue(v)[0][s]
        for k in (1, 2, 7, 10, 123, 4567):
            for frac in (D(0), D("0.25"), D("0.5"), D("0.999")):
                q = f.step_size * (k + frac)
                assert round_quantity(q, f.step_size, f.min_qty) == ccxt_amount(v, s, q), (s, q)
                if f.tick_size:
                    p = f.tick_size * (k + frac) + f.min_price
                    assert round_price(p, f, toward=toward_ccxt(p, f)) == ccxt_price(v, s, p), (s, p)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_quantities_and_prices_agree_with_ccxt(data: st.DataObject) -> None:
    v, s = data.draw(st.sampled_from(TICKED), label="symbol")
    f = venue(v)[0][s]
    q = data.draw(multiples(f.step_size), label="quantity")
    assert round_quantity(q, f.step_size, f.min_qty) == ccxt_amount(v, s, q)
    assert round_quantity(q, f.market_step_size, f.market_min_qty) == ccxt_amount(v, s, q)
    p = data.draw(multiples(f.tick_size), label="price")
    assert round_price(p, f, toward=toward_ccxt(p, f)) == ccxt_price(v, s, p)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_sized_orders_carry_ccxts_numbers_where_the_rules_coincide(data: st.DataObject) -> None:
    """The numbers of whole sized orders (LIMIT and MARKET, both sides, every check applied)."""
    v, s = data.draw(st.sampled_from(TICKED), label="symbol")
    f = msgspec.structs.replace(venue(v)[0][s], status="TRADING")
    mark = f.min_price * data.draw(st.integers(2, 1000), label="mark in minPrices")
    t, side = data.draw(st.sampled_from([OrderType.LIMIT, OrderType.MARKET])), data.draw(st.sampled_from(Side))
    q = data.draw(multiples(f.step_size), label="quantity")
    price = None
    if t is OrderType.LIMIT:
        price = mark + f.tick_size * D(data.draw(st.integers(-10_000, 10_000))).scaleb(-3)
    order = size(SizingRequest(s, side, t, quantity=q, price=price, reduce_only=True), f, mark)
    if not isinstance(order, SizedOrder):
        return  # refused for a limit ccxt does not check (maxQty, band): nothing to compare
    assert order.quantity == ccxt_amount(v, s, q)
    if price is not None and toward_ccxt(price, f) == ("down" if side is Side.BUY else "up"):
        assert order.price == ccxt_price(v, s, price)


# --- where they differ, and why ------------------------------------------------------------------


def test_ccxt_rounds_to_the_nearest_tick_whatever_the_side() -> None:
    btc = venue("mainnet")[0]["BTCUSDT"]
    assert ccxt_price("mainnet", "BTCUSDT", D("50000.06")) == D("50000.1")  # a higher bid than asked
    assert round_price(D("50000.06"), btc, toward="down") == D("50000.0")
    assert ccxt_price("mainnet", "BTCUSDT", D("50000.04")) == D("50000.0")  # a lower ask than asked
    assert round_price(D("50000.04"), btc, toward="up") == D("50000.1")


def test_ccxt_counts_the_grid_from_zero_binance_from_min_qty() -> None:
    """Not on any recorded symbol; shown on a made-up filter with minQty off the step grid."""
    assert round_quantity(D("0.0046"), D("0.002"), D("0.001")) == D("0.003")  # 0.001, 0.003, 0.005 ...
    ex = ccxt_exchange("mainnet")
    assert ex.decimal_to_precision("0.0046", ccxt.TRUNCATE, 0.002, ccxt.TICK_SIZE) == "0.004"


def test_ccxt_refuses_a_zero_amount_with_an_exception_we_with_a_refusal() -> None:
    with pytest.raises(ccxt.InvalidOrder):
        ccxt_amount("mainnet", "BTCUSDT", D("0.0004"))
    btc = venue("mainnet")[0]["BTCUSDT"]
    assert round_quantity(D("0.0004"), btc.step_size, btc.min_qty) == 0


def test_ccxt_has_no_price_precision_for_a_zero_tick() -> None:
    with pytest.raises(AssertionError):
        ccxt_price("testnet", "OPENUSDT", D("7.3"))
    opn = venue("testnet")[0]["OPENUSDT"]
    assert round_price(D("7.3"), opn, toward="down") == D("7")


def test_ccxt_keeps_the_filters_as_floats_and_changes_the_callers_decimal_context() -> None:
    market = ccxt_exchange("mainnet").market("BTCUSDT")
    assert isinstance(market["precision"]["amount"], float) and isinstance(market["precision"]["price"], float)
    with decimal.localcontext() as ctx:
        ctx.rounding = decimal.ROUND_HALF_EVEN
        ccxt_price("mainnet", "BTCUSDT", D("50000.05"))
        assert decimal.getcontext().rounding == decimal.ROUND_HALF_UP
