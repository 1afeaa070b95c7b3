"""Every recorded real payload parses into its domain type with exact Decimals (or is classified)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from aegis.binance import parse
from aegis.binance.errors import (
    AuthError,
    ClockSkew,
    OrderNotFound,
    ParseError,
    RateLimited,
    Rejected,
    classify,
)
from aegis.domain import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoUpdate,
    ExecutionType,
    ListenKeyExpired,
    MarginCall,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    TimeInForce,
    TradeLite,
)
from tests.binance.fixtures import all_names, obj, raw


def same(value: Decimal, text: str) -> None:
    """The Decimal is the wire string exactly: digits and trailing zeros both survive."""
    assert isinstance(value, Decimal)
    assert str(value) == text


# --- REST ---------------------------------------------------------------------------------


def check_exchange_info_mainnet(name: str) -> None:
    info = parse.parse_exchange_info(raw(name))
    doc = obj(name)
    assert len(info.symbols) == len(doc["symbols"]) == 347
    assert info.skipped == ()
    assert info.rate_limits.weight_per_minute == 2400
    assert (info.rate_limits.orders_per_10s, info.rate_limits.orders_per_minute) == (300, 1200)
    btc = info.symbols["BTCUSDT"]
    filters = {f["filterType"]: f for s in doc["symbols"] if s["symbol"] == "BTCUSDT" for f in s["filters"]}
    same(btc.tick_size, filters["PRICE_FILTER"]["tickSize"])
    same(btc.min_price, filters["PRICE_FILTER"]["minPrice"])
    same(btc.step_size, filters["LOT_SIZE"]["stepSize"])
    same(btc.market_max_qty, filters["MARKET_LOT_SIZE"]["maxQty"])
    assert btc.market_max_qty == 120 and btc.max_qty == 1000  # MARKET_LOT_SIZE is its own rule
    same(btc.min_notional, filters["MIN_NOTIONAL"]["notional"])
    same(btc.percent_up, filters["PERCENT_PRICE"]["multiplierUp"])
    assert btc.max_num_orders == 200 and btc.trading
    assert info.symbols["BTCSTUSDT"].contract_type == ""
    assert info.symbols["ETHBTC"].min_notional == Decimal("0.001")
    statuses = {s["symbol"]: s["status"] for s in doc["symbols"]}
    assert {s for s, f in info.symbols.items() if f.trading} == {
        s for s, st in statuses.items() if st == "TRADING"
    }


def check_exchange_info_testnet(name: str) -> None:
    info = parse.parse_exchange_info(raw(name))
    assert len(info.symbols) == len(obj(name)["symbols"]) == 660
    assert info.rate_limits.weight_per_minute == 6000
    # POSITION_RISK_CONTROL (new, undocumented) is ignored; MAX_NUM_ALGO_ORDERS is gone.
    assert info.symbols["BTCUSDT"].trading
    assert any(s.contract_type == "TRADIFI_PERPETUAL" for s in info.symbols.values())
    assert not all(s.trading for s in info.symbols.values())


def check_klines(name: str) -> None:
    rows = obj(name)
    candles = parse.parse_klines(raw(name), "BTCUSDT")
    assert len(candles) == len(rows) == 4
    for c, r in zip(candles, rows, strict=True):
        assert (c.symbol, c.open_time_ms, c.close_time_ms, c.trades) == ("BTCUSDT", r[0], r[6], r[8])
        for value, text in zip(
            (c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.taker_buy_base, c.taker_buy_quote),
            (r[1], r[2], r[3], r[4], r[5], r[7], r[9], r[10]),
            strict=True,
        ):
            same(value, text)


def check_order(name: str) -> None:
    doc = obj(name)
    order = parse.parse_order(raw(name))
    assert order.order_id == doc["orderId"] and order.client_order_id == doc["clientOrderId"]
    assert order.status is OrderStatus(doc["status"]) and order.type is OrderType.LIMIT
    assert order.side is Side(doc["side"]) and order.time_in_force is TimeInForce.GTC
    same(order.price, doc["price"])
    same(order.orig_qty, doc["origQty"])
    same(order.executed_qty, doc["executedQty"])
    same(order.avg_price, doc["avgPrice"])
    same(order.stop_price, doc["stopPrice"])
    assert order.update_time_ms == doc["updateTime"] and order.position_side == "BOTH"


def check_open_orders(name: str) -> None:
    (doc,) = obj(name)
    (order,) = parse.parse_orders(raw(name))
    assert order.type is OrderType.TRAILING_STOP_MARKET and order.position_side == "SHORT"
    same(order.stop_price, doc["stopPrice"])
    same(order.orig_qty, doc["origQty"])


def check_server_time(name: str) -> None:
    assert parse.parse_server_time(raw(name)) == obj(name)["serverTime"]


def check_listen_key(name: str) -> None:
    assert parse.parse_listen_key(raw(name)) == obj(name)["listenKey"]


def check_user_trades(name: str) -> None:
    docs = obj(name)
    fills = parse.parse_user_trades(raw(name))
    assert [f.trade_id for f in fills] == [d["id"] for d in docs]
    for fill, d in zip(fills, docs, strict=True):
        same(fill.price, d["price"])
        same(fill.quantity, d["qty"])
        same(fill.commission, d["commission"])
        same(fill.realized_pnl, d["realizedPnl"])
        assert fill.order_id == d["orderId"] and fill.maker is d["maker"] and fill.side is Side(d["side"])


def check_account(name: str) -> None:
    doc = obj(name)
    balances = {b.asset: b for b in parse.parse_account_balances(raw(name))}
    assert set(balances) == {a["asset"] for a in doc["assets"]}
    usdt = next(a for a in doc["assets"] if a["asset"] == "USDT")
    same(balances["USDT"].wallet_balance, usdt["walletBalance"])
    same(balances["USDT"].available_balance, usdt["availableBalance"])  # type: ignore[arg-type]
    assert balances["USDT"].update_time_ms == usdt["updateTime"]


def check_position_risk(name: str) -> None:
    (doc,) = obj(name)
    (pos,) = parse.parse_position_risk(raw(name))
    same(pos.amount, doc["positionAmt"])
    same(pos.entry_price, doc["entryPrice"])
    same(pos.unrealized_pnl, doc["unRealizedProfit"])
    assert pos.update_time_ms == int(doc["updateTime"])  # ccxt recorded it as a string


# --- streams ------------------------------------------------------------------------------


def check_kline_frame(name: str) -> None:
    k = obj(name)["data"]["k"]
    event = parse.parse_kline_frame(raw(name))
    assert event.event_time_ms == obj(name)["data"]["E"] and event.closed is False
    c = event.candle
    assert (c.symbol, c.open_time_ms, c.close_time_ms, c.trades) == (k["s"], k["t"], k["T"], k["n"])
    for value, key in (
        (c.open, "o"),
        (c.high, "h"),
        (c.low, "l"),
        (c.close, "c"),
        (c.volume, "v"),
        (c.quote_volume, "q"),
    ):
        same(value, k[key])
    same(c.taker_buy_base, k["V"])
    same(c.taker_buy_quote, k["Q"])


def user(name: str) -> Any:
    return parse.parse_user_event(raw(name))


def check_order_update(name: str) -> None:
    doc = obj(name)
    o = doc["o"]
    event = user(name)
    assert isinstance(event, OrderUpdate)
    assert event.execution is ExecutionType(o["x"]) and event.order.status is OrderStatus(o["X"])
    assert event.order.order_id == o["i"] and event.order.client_order_id == o["c"]
    assert event.order.position_side == o["ps"] and event.order.reduce_only is o["R"]
    same(event.order.price, o["p"])
    same(event.order.orig_qty, o["q"])
    same(event.order.executed_qty, o["z"])
    if o["x"] == "TRADE":
        assert event.fill is not None
        assert event.fill.trade_id == o["t"]
        same(event.fill.price, o["L"])
        same(event.fill.quantity, o["l"])
        same(event.fill.commission, o["n"])
        same(event.fill.realized_pnl, o["rp"])
        assert event.fill.commission_asset == o["N"]
    else:
        assert event.fill is None


def check_trade_lite(name: str) -> None:
    doc = obj(name)
    event = user(name)
    assert isinstance(event, TradeLite)
    assert event.fill.order_id == doc["i"] and event.fill.trade_id == doc["t"]
    same(event.fill.price, doc["L"])
    same(event.fill.quantity, doc["l"])


def check_trade_lite_19_digits(name: str) -> None:
    check_trade_lite(name)
    event = user(name)
    assert event.fill.order_id == 8389765739703625592  # > 2**53: exact, never a float
    assert event.fill.order_id > 2**53


def check_account_update(name: str) -> None:
    a = obj(name)["a"]
    event = user(name)
    assert isinstance(event, AccountUpdate)
    assert event.reason == a["m"]
    assert [(p.symbol, p.position_side) for p in event.positions] == [(p["s"], p["ps"]) for p in a["P"]]
    for p, d in zip(event.positions, a["P"], strict=True):
        same(p.amount, d["pa"])
        same(p.entry_price, d["ep"])
        same(p.unrealized_pnl, d["up"])
    for b, d in zip(event.balances, a["B"], strict=True):
        same(b.wallet_balance, d["wb"])


def check_config_update(name: str) -> None:
    event = user(name)
    assert isinstance(event, AccountConfigUpdate)
    assert (event.symbol, event.leverage, event.multi_assets) == ("BTCUSDT", 19, None)


def check_algo_update(name: str) -> None:
    doc = obj(name)
    o = doc.get("data", doc)["o"]
    event = user(name)
    assert isinstance(event, AlgoUpdate)
    assert (event.algo_id, event.client_algo_id, event.status) == (o["aid"], o["caid"], o["X"])
    same(event.trigger_price, o["tp"])
    assert event.triggered_order_id == (int(o["ai"]) if o["ai"] else None)


def check_margin_call(name: str) -> None:
    event = user(name)
    assert isinstance(event, MarginCall)
    same(event.cross_wallet_balance, obj(name)["cw"])  # type: ignore[arg-type]
    same(event.positions[0].amount, obj(name)["p"][0]["pa"])


def check_listen_key_expired(name: str) -> None:
    event = user(name)
    assert isinstance(event, ListenKeyExpired)
    assert event.event_time_ms == 1736996475556  # sent as a string in the newer docs
    assert event.listen_key == obj(name)["listenKey"]


def check_not_a_user_event(name: str) -> None:
    """Market data (bookTicker) on a user parser is not an error: it is just not ours."""
    assert user(name) is None


# --- error bodies -------------------------------------------------------------------------

ERRORS: dict[str, tuple[int, type[Exception]]] = {
    "error_-1003_ip_banned.reconstructed.json": (418, RateLimited),
    "error_-1021_ahead_of_server.json": (400, ClockSkew),
    "error_-1021_outside_recvWindow.json": (400, ClockSkew),
    "error_-1102_mandatory_param.json": (400, Rejected),
    "error_-1111_precision.json": (400, Rejected),
    "error_-1121_invalid_symbol.json": (400, Rejected),
    "error_-2011_unknown_order.json": (400, OrderNotFound),
    "error_-2013_no_such_order.json": (400, OrderNotFound),
    "error_-2015_invalid_api_key.json": (401, AuthError),
    "error_-2019_margin_insufficient.json": (400, Rejected),
    "error_-4003_qty_le_zero.json": (400, Rejected),
    "error_-4061_position_side_mismatch.json": (400, Rejected),
    "error_-4120_use_algo_endpoint.json": (400, Rejected),
    "error_-4131_percent_price_market.json": (400, Rejected),
    "error_-4164_min_notional.json": (400, Rejected),
    "error_-5022_post_only_rejected.json": (400, Rejected),
}

CHECKS = {
    "fapi_v1_exchangeInfo.json": check_exchange_info_mainnet,
    "fapi_v1_exchangeInfo_testnet_2025-12.json": check_exchange_info_testnet,
    "fapi_v1_klines.json": check_klines,
    "fapi_v1_listenKey.json": check_listen_key,
    "fapi_v1_openOrders.docs.json": check_open_orders,
    "fapi_v1_order_cancel.json": check_order,
    "fapi_v1_order_new.json": check_order,
    "fapi_v1_order_query.json": check_order,
    "fapi_v1_time.docs.json": check_server_time,
    "fapi_v1_userTrades.json": check_user_trades,
    "fapi_v3_account.json": check_account,
    "fapi_v3_positionRisk.ccxt.json": check_position_risk,
    "ws_ACCOUNT_CONFIG_UPDATE_leverage.json": check_config_update,
    "ws_ACCOUNT_UPDATE_hedge_2021.json": check_account_update,
    "ws_ALGO_UPDATE_new.docs.json": check_algo_update,
    "ws_ALGO_UPDATE_triggered.json": check_algo_update,
    "ws_MARGIN_CALL.docs.json": check_margin_call,
    "ws_ORDER_TRADE_UPDATE_canceled_hedge.json": check_order_update,
    "ws_ORDER_TRADE_UPDATE_hedge_new_2021.json": check_order_update,
    "ws_ORDER_TRADE_UPDATE_trailing.docs.json": check_order_update,
    "ws_TRADE_LITE_19digit_orderId.json": check_trade_lite_19_digits,
    "ws_bookTicker_combined.json": check_not_a_user_event,
    "ws_kline_combined.json": check_kline_frame,
    "ws_listenKeyExpired.docs.json": check_listen_key_expired,
    "ws_seq_close_1_TRADE_LITE.json": check_trade_lite,
    "ws_seq_close_2_ORDER_TRADE_UPDATE_NEW.json": check_order_update,
    "ws_seq_close_3_ACCOUNT_UPDATE.json": check_account_update,
    "ws_seq_close_4_ORDER_TRADE_UPDATE_FILLED.json": check_order_update,
    "ws_seq_open_1_TRADE_LITE.json": check_trade_lite,
    "ws_seq_open_2_ORDER_TRADE_UPDATE_NEW.json": check_order_update,
    "ws_seq_open_3_ACCOUNT_UPDATE.json": check_account_update,
    "ws_seq_open_4_ORDER_TRADE_UPDATE_FILLED.json": check_order_update,
}

# Payloads of endpoints the engine does not call; listed so a new fixture cannot slip by.
NOT_PARSED = {
    "fapi_v1_depth.json": "order book: the engine trades on closed candles",
    "fapi_v1_ticker_24hr.json": "24 h ticker: not used",
}


def test_every_fixture_is_covered() -> None:
    covered = set(CHECKS) | set(ERRORS) | set(NOT_PARSED)
    assert set(all_names()) == covered


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_fixture_parses_into_its_domain_type(name: str) -> None:
    CHECKS[name](name)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_body_maps_to_its_class(name: str) -> None:
    status, cls = ERRORS[name]
    error = classify(status, raw(name), {}, method="POST", endpoint="POST /fapi/v1/order")
    assert type(error) is cls
    assert error.code == obj(name)["code"] and error.message == obj(name)["msg"]


def test_ban_fixture_carries_the_ban_end() -> None:
    error = classify(418, raw("error_-1003_ip_banned.reconstructed.json"), {}, method="GET")
    assert isinstance(error, RateLimited) and error.until_ms == 1615183669840


def test_seq_fill_arrives_before_the_new_ack_with_the_same_trade_id() -> None:
    lite = user("ws_seq_open_1_TRADE_LITE.json")
    filled = user("ws_seq_open_4_ORDER_TRADE_UPDATE_FILLED.json")
    assert isinstance(lite, TradeLite) and isinstance(filled, OrderUpdate) and filled.fill is not None
    assert lite.fill.trade_id == filled.fill.trade_id  # the deduplication key agrees
    assert lite.fill.quantity == filled.fill.quantity and lite.fill.price == filled.fill.price


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-inf", "sNaN"])
def test_a_closed_kline_with_a_non_finite_number_never_becomes_history(bad: str) -> None:
    doc = obj("ws_kline_combined.json")
    doc["data"]["k"].update({"x": True, "c": bad})
    payload = json.dumps(doc).encode()
    with pytest.raises(ParseError) as info:
        parse.parse_kline_frame(payload)
    assert info.value.raw == payload


def test_a_raw_ws_mode_kline_frame_parses_like_a_combined_one() -> None:
    data = json.dumps(obj("ws_kline_combined.json")["data"]).encode()
    assert parse.parse_kline_frame(data) == parse.parse_kline_frame(raw("ws_kline_combined.json"))


def test_a_non_kline_frame_is_a_parse_error_not_a_crash() -> None:
    with pytest.raises(ParseError):
        parse.parse_kline_frame(raw("ws_bookTicker_combined.json"))


@pytest.mark.parametrize(
    ("status", "expected"), [("NEW_ADL", OrderStatus.FILLED), ("NEW_INSURANCE", OrderStatus.FILLED)]
)
def test_a_liquidation_fill_with_binance_liquidation_status_is_kept(
    status: str, expected: OrderStatus
) -> None:
    doc = obj("ws_seq_close_4_ORDER_TRADE_UPDATE_FILLED.json")
    doc["o"].update({"X": status, "x": "CALCULATED", "o": "LIQUIDATION", "c": "autoclose-1731955175166"})
    event = parse.parse_user_event(json.dumps(doc).encode())
    assert isinstance(event, OrderUpdate) and event.order.status is expected
    assert event.execution is ExecutionType.CALCULATED and event.order.type is OrderType.LIQUIDATION
    assert event.fill is not None and event.fill.quantity == Decimal("0.002")  # the fill is not lost
