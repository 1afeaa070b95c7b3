"""Sizing by example, on the recorded real exchangeInfo: what Binance's filters do to an intent.

Mainnet BTCUSDT: tickSize 0.10 from minPrice 556.80, LOT_SIZE step 0.001 / min 0.001 / max 1000,
MARKET_LOT_SIZE max 120, MIN_NOTIONAL 100 USDT, PERCENT_PRICE 1.05 / 0.95.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

import msgspec
import pytest

from aegis.binance.parse.market import parse_exchange_info
from aegis.domain import OrderType, Side, SymbolFilters
from aegis.trading.sizing import (
    MinNotionalPolicy,
    Refusal,
    SizedOrder,
    SizingRequest,
    round_price,
    round_quantity,
    size,
)
from tests.fixtures import binance_raw

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
MAINNET = parse_exchange_info(binance_raw("fapi_v1_exchangeInfo.json")).symbols
TESTNET = parse_exchange_info(binance_raw("fapi_v1_exchangeInfo_testnet_2025-12.json")).symbols
BTC = MAINNET["BTCUSDT"]
MARK = D("50000")


def req(side: Side, type: OrderType, **kw: object) -> SizingRequest:
    return SizingRequest("BTCUSDT", side, type, **kw)  # type: ignore[arg-type]


def sized(decision: SizedOrder | Refusal) -> SizedOrder:
    assert isinstance(decision, SizedOrder), decision
    return decision


def refused(decision: SizedOrder | Refusal, filter: str, code: int | None) -> Refusal:
    assert isinstance(decision, Refusal), decision
    assert (decision.filter, decision.code) == (filter, code), decision
    return decision


# --- the examples of the issue -----------------------------------------------------------------


def test_an_order_below_min_notional_is_refused_or_raised_to_the_next_step() -> None:
    """0.001 BTC at 50,000 is 50 USDT: under BTCUSDT's 100 USDT minimum."""
    intent = req(BUY, LIMIT, quantity=D("0.001"), price=D("50000"))
    no = refused(size(intent, BTC, MARK), "MIN_NOTIONAL", -4164)
    assert (no.limit, no.value) == ("notional 100", "50")
    assert "0.001 x price 50000 = 50" in no.reason

    order = sized(size(intent, BTC, MARK, min_notional=MinNotionalPolicy.RAISE))
    assert (order.quantity, order.notional) == (D("0.002"), D("100"))
    assert order.wire() == {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.002", "price": "50000.0"}


def test_raising_stops_at_the_risk_limit_and_at_max_qty() -> None:
    intent = req(BUY, LIMIT, quantity=D("0.001"), price=D("50000"))
    no = refused(size(intent, BTC, MARK, min_notional=MinNotionalPolicy.RAISE, max_notional=D("99")), "MIN_NOTIONAL", -4164)
    assert "above max_notional 99" in no.reason
    tiny = msgspec.structs.replace(BTC, max_qty=D("0.001"))
    no = refused(size(intent, tiny, MARK, min_notional=MinNotionalPolicy.RAISE), "MIN_NOTIONAL", -4164)
    assert "above LOT_SIZE maxQty 0.001" in no.reason


def test_a_dust_position_can_always_be_closed() -> None:
    """Reduce-only orders are exempt from MIN_NOTIONAL, as Binance exempts them."""
    close = sized(size(req(SELL, MARKET, quantity=D("0.001"), reduce_only=True), BTC, MARK))
    assert (close.quantity, close.notional) == (D("0.001"), D("50"))
    assert close.wire()["reduceOnly"] == "true"
    refused(size(req(SELL, MARKET, quantity=D("0.001")), BTC, MARK), "MIN_NOTIONAL", -4164)


def test_prices_round_away_from_aggression() -> None:
    """A SELL at 100000.05 on a 0.10 tick is 100000.10, never 100000.00 (a lower ask than asked);
    a BUY at the same price is 100000.00."""
    ask = sized(size(req(SELL, LIMIT, quantity=D("0.01"), price=D("100000.05")), BTC, D("100000")))
    assert ask.price == D("100000.10")
    assert ask.wire()["price"] == "100000.1"  # no more decimals than the tick needs
    bid = sized(size(req(BUY, LIMIT, quantity=D("0.01"), price=D("100000.05")), BTC, D("100000")))
    assert bid.price == D("100000.0")
    assert round_price(D("100000.05"), BTC, toward="up") == D("100000.1")
    assert round_price(D("100000.05"), BTC, toward="down") == D("100000.0")


# --- quantities ---------------------------------------------------------------------------------


def test_quantities_round_down_on_the_grid_counted_from_min_qty() -> None:
    assert round_quantity(D("0.0019"), D("0.001"), D("0.001")) == D("0.001")
    # a grid that starts at minQty 0.001 with step 0.002 is 0.001, 0.003, 0.005 ...
    assert round_quantity(D("0.0046"), D("0.002"), D("0.001")) == D("0.003")
    assert round_quantity(D("7.5"), D("0"), D("0")) == D("7.5")  # step 0: the check is off


def test_market_orders_use_market_lot_size() -> None:
    """150 BTC fits LOT_SIZE (max 1000) but not MARKET_LOT_SIZE (max 120)."""
    assert sized(size(req(BUY, LIMIT, quantity=D("150"), price=MARK), BTC, MARK)).quantity == D("150")
    no = refused(size(req(BUY, MARKET, quantity=D("150")), BTC, MARK), "MARKET_LOT_SIZE", -4005)
    assert (no.limit, no.value) == ("maxQty 120", "150")


def test_a_quantity_that_rounds_to_nothing_says_so() -> None:
    no = refused(size(req(BUY, MARKET, quantity=D("0.0004")), BTC, MARK), "MARKET_LOT_SIZE", -4003)
    assert no.value == "0" and "rounded down" in no.reason
    no = refused(size(req(BUY, MARKET, notional=D("10")), BTC, MARK), "MARKET_LOT_SIZE", -4003)
    assert "notional 10 / 50000" in no.reason


def test_a_notional_is_converted_at_the_price_it_is_checked_at() -> None:
    assert sized(size(req(BUY, MARKET, notional=D("1000")), BTC, MARK)).quantity == D("0.02")
    limit = sized(size(req(BUY, LIMIT, notional=D("1000"), price=D("40000")), BTC, MARK))
    assert (limit.quantity, limit.notional) == (D("0.025"), D("1000"))


def test_a_zero_min_qty_is_no_limit_but_quantity_zero_is_still_refused() -> None:
    tusdt = TESTNET["TUSDT"]  # minQty 0, stepSize 1
    assert (tusdt.min_qty, tusdt.step_size) == (D(0), D(1))
    order = sized(size(SizingRequest("TUSDT", BUY, LIMIT, quantity=D("1.9"), price=D("0.02")), tusdt, D("0.02"),
                       min_notional=MinNotionalPolicy.RAISE))  # fmt: skip
    assert order.quantity == D("250")  # 1 rounded, then raised to 5 USDT at 0.02
    refused(size(SizingRequest("TUSDT", BUY, LIMIT, quantity=D("0.5"), price=D("0.02")), tusdt, D("0.02")), "LOT_SIZE", -4003)


# --- prices, the band, triggers ----------------------------------------------------------------


def test_a_zero_tick_still_rounds_to_the_price_precision() -> None:
    """Testnet OPENUSDT has tickSize 0 (check off) and pricePrecision 0: more decimals is -1111."""
    opn = msgspec.structs.replace(TESTNET["OPENUSDT"], status="TRADING")
    assert (opn.tick_size, opn.price_precision) == (D(0), 0)
    order = sized(size(SizingRequest("OPENUSDT", SELL, LIMIT, quantity=D("10"), price=D("7.3")), opn, D("7")))
    assert order.wire()["price"] == "8"


def test_the_percent_price_band_binds_limits_and_market_orders() -> None:
    no = refused(size(req(BUY, LIMIT, quantity=D("0.01"), price=D("52600")), BTC, MARK), "PERCENT_PRICE", -4016)
    assert no.limit == "price <= 52500 (mark 50000 x multiplierUp 1.05)"
    refused(size(req(SELL, LIMIT, quantity=D("0.01"), price=D("47400")), BTC, MARK), "PERCENT_PRICE", -4024)
    refused(size(req(BUY, MARKET, quantity=D("0.01")), BTC, MARK, last_price=D("52600")), "PERCENT_PRICE", -4131)
    sized(size(req(BUY, MARKET, quantity=D("0.01")), BTC, MARK, last_price=D("52500")))


def test_price_filter_limits() -> None:
    no = refused(size(req(BUY, LIMIT, quantity=D("1"), price=D("500")), BTC, MARK), "PRICE_FILTER", -4013)
    assert no.limit == "minPrice 556.8"
    refused(size(req(SELL, LIMIT, quantity=D("1"), price=D("5000000")), BTC, D("5000000")), "PRICE_FILTER", -4002)
    refused(size(req(BUY, LIMIT, quantity=D("1"), price=D("-1")), BTC, MARK), "PRICE_FILTER", -4013)


def test_protective_stops_round_toward_the_mark_and_trigger_no_later_than_asked() -> None:
    long_stop = SizingRequest("BTCUSDT", SELL, OrderType.STOP_MARKET, trigger_price=D("48000.05"), close_position=True)
    order = sized(size(long_stop, BTC, MARK))
    assert (order.trigger_price, order.quantity, order.notional) == (D("48000.1"), None, D(0))
    assert order.wire() == {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "triggerPrice": "48000.1",
                            "closePosition": "true"}  # fmt: skip
    short_stop = req(BUY, OrderType.STOP_MARKET, quantity=D("0.01"), trigger_price=D("52000.05"), reduce_only=True)
    assert sized(size(short_stop, BTC, MARK)).trigger_price == D("52000.0")
    take_profit = req(SELL, OrderType.TAKE_PROFIT, quantity=D("0.01"), price=D("55000.01"), trigger_price=D("55000.09"))
    tp = sized(size(take_profit, BTC, MARK))
    assert (tp.trigger_price, tp.price) == (D("55000.0"), D("55000.1"))


def test_a_trigger_on_the_wrong_side_of_the_mark_is_refused_as_binance_would() -> None:
    wrong = SizingRequest("BTCUSDT", SELL, OrderType.STOP_MARKET, trigger_price=D("50001"), close_position=True)
    no = refused(size(wrong, BTC, MARK), "REQUEST", -2021)
    assert no.limit == "triggerPrice below mark 50000"
    onto = SizingRequest("BTCUSDT", SELL, OrderType.STOP_MARKET, trigger_price=D("49999.95"), close_position=True)
    no = refused(size(onto, BTC, MARK), "REQUEST", -2021)  # 49999.95 rounds up onto the mark
    assert no.value == "50000" and "rounded toward the mark from 49999.95" in no.reason


def test_a_stop_limit_price_must_fit_the_band_around_its_trigger() -> None:
    stop = req(BUY, OrderType.STOP, quantity=D("0.01"), price=D("60000"), trigger_price=D("55000"))
    no = refused(size(stop, BTC, MARK), "PERCENT_PRICE", -4016)
    assert no.limit == "price <= 57750 (triggerPrice 55000 x multiplierUp 1.05)"


# --- the request itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intent", "code"),
    [
        (req(BUY, OrderType.TRAILING_STOP_MARKET, quantity=D("1")), -1116),
        (SizingRequest("ETHUSDT", BUY, MARKET, quantity=D("1")), -1121),
        (req(BUY, MARKET, quantity=D("1"), notional=D("100")), None),
        (req(BUY, MARKET), -1102),
        (req(BUY, LIMIT, quantity=D("1")), -1102),
        (req(BUY, MARKET, quantity=D("1"), price=MARK), -1106),
        (req(BUY, LIMIT, quantity=D("1"), price=MARK, trigger_price=MARK), -1106),
        (req(BUY, OrderType.STOP_MARKET, quantity=D("1")), -1102),
        (req(BUY, MARKET, quantity=D("NaN")), -1102),
        (req(BUY, MARKET, quantity=D("1"), close_position=True), -1130),
        (req(SELL, OrderType.STOP_MARKET, quantity=D("1"), trigger_price=D("1000"), close_position=True), -4137),
        (req(SELL, OrderType.STOP_MARKET, trigger_price=D("1000"), close_position=True, reduce_only=True), -1106),
        (req(BUY, MARKET, quantity=D("1E+100")), None),
    ],
)
def test_an_ill_formed_request_is_refused_as_such(intent: SizingRequest, code: int | None) -> None:
    refused(size(intent, BTC, MARK), "REQUEST", code)


def test_a_symbol_that_does_not_trade_is_refused() -> None:
    settling = next(f for f in MAINNET.values() if f.status == "SETTLING")
    no = refused(size(SizingRequest(settling.symbol, BUY, MARKET, quantity=D("1")), settling, D("1")), "REQUEST", -1122)
    assert no.value == "SETTLING"


@pytest.mark.parametrize("mark", [D(0), D(-1), D("NaN"), D("Infinity")])
def test_no_usable_mark_no_order(mark: Decimal) -> None:
    refused(size(req(BUY, MARKET, quantity=D("1")), BTC, mark), "REQUEST", None)


# --- what the numbers look like on the wire ----------------------------------------------------


def test_wire_strings_are_plain_decimals_even_for_exponent_ticks() -> None:
    pepe: SymbolFilters = MAINNET["1000PEPEUSDT"]
    assert str(pepe.tick_size) == "1E-7"
    order = sized(size(SizingRequest("1000PEPEUSDT", BUY, LIMIT, quantity=D("1000000"), price=D("0.012345678")),
                       pepe, D("0.0123")))  # fmt: skip
    assert order.wire()["price"] == "0.0123456"
    assert order.wire()["quantity"] == "1000000"


def test_the_answer_does_not_depend_on_the_callers_decimal_context() -> None:
    """ccxt sets ROUND_HALF_UP on the thread's context; a 3-digit context would wreck everything."""
    intent = req(SELL, LIMIT, notional=D("12345.678"), price=D("49999.95"))
    expected = size(intent, BTC, MARK)
    with decimal.localcontext(decimal.Context(prec=3, rounding=decimal.ROUND_UP)):
        assert size(intent, BTC, MARK) == expected
        assert round_price(D("49999.95"), BTC, toward="down") == D("49999.9")
        assert round_quantity(D("1.23456"), D("0.001"), D("0.001")) == D("1.234")
    assert sized(expected).quantity == D("0.246")
