"""Binance-shaped payloads (REST bodies and user-stream events), field for field.

Key sets and value types follow the recorded real payloads in tests/fixtures/binance;
money is Decimal, rendered as strings without exponents in Binance's trailing-zero styles.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aegis.sim.accounts import AlgoOrder, Order, Trade
from aegis.sim.symbols import ZERO, SymbolSpec
from aegis.sim.wire import f8, fixed, norm, z8

Payload = dict[str, Any]


def avg_price(o: Order) -> str:
    return fixed(o.avg_price, 5) if o.executed_qty else "0.00"


def order_rest(o: Order, spec: SymbolSpec, *, query: bool = False) -> Payload:
    """POST/DELETE (with cumQty) or GET/openOrders (with time, without cumQty) order object."""
    pp, qp = spec.price_precision, spec.quantity_precision
    body: Payload = {
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": o.status,
        "clientOrderId": o.client_order_id,
        "price": fixed(o.price, pp),
        "avgPrice": avg_price(o),
        "origQty": fixed(o.orig_qty, qp),
        "executedQty": fixed(o.executed_qty, qp),
    }
    if not query:
        body["cumQty"] = fixed(o.executed_qty, qp)
    body.update(
        {
            "cumQuote": fixed(o.cum_quote, 5),
            "timeInForce": o.time_in_force,
            "type": o.type,
            "reduceOnly": o.reduce_only,
            "closePosition": o.close_position,
            "side": o.side,
            "positionSide": "BOTH",
            "stopPrice": fixed(o.stop_price, pp),
            "workingType": o.working_type,
            "priceProtect": o.price_protect,
            "origType": o.orig_type,
            "priceMatch": o.price_match,
            "selfTradePreventionMode": o.stp_mode,
            "goodTillDate": o.good_till_date,
        }
    )
    if query:
        body["time"] = o.time
    body["updateTime"] = o.update_time
    return body


def order_update(
    o: Order,
    spec: SymbolSpec,
    *,
    now: int,
    execution: str,
    status: str | None = None,
    last_qty: Decimal = ZERO,
    last_price: Decimal = ZERO,
    commission: Decimal = ZERO,
    trade_id: int = 0,
    maker: bool = False,
    realized: Decimal = ZERO,
    bid_notional: Decimal = ZERO,
    ask_notional: Decimal = ZERO,
    executed: Decimal | None = None,
    cum_quote: Decimal | None = None,
) -> Payload:
    """ORDER_TRADE_UPDATE; ``executed``/``cum_quote`` override the order's (for a NEW snapshot)."""
    pp, qp = spec.price_precision, spec.quantity_precision
    z = o.executed_qty if executed is None else executed
    cq = o.cum_quote if cum_quote is None else cum_quote
    return {
        "e": "ORDER_TRADE_UPDATE",
        "T": now,
        "E": now,
        "o": {
            "s": o.symbol,
            "c": o.client_order_id,
            "S": o.side,
            "o": o.type,
            "f": o.time_in_force,
            "q": fixed(o.orig_qty, qp),
            "p": fixed(o.price, pp) if o.price else "0",
            "ap": fixed(cq / z, 5) if z else "0",
            "sp": fixed(o.stop_price, pp) if o.stop_price else "0",
            "x": execution,
            "X": status or o.status,
            "i": o.order_id,
            "l": fixed(last_qty, qp) if last_qty else "0",
            "z": fixed(z, qp) if z else "0",
            "L": fixed(last_price, pp) if last_price else "0",
            "n": z8(commission),
            "N": spec.margin_asset,
            "T": now,
            "t": trade_id,
            "b": fixed(bid_notional, 5) if bid_notional else "0",
            "a": fixed(ask_notional, 5) if ask_notional else "0",
            "m": maker,
            "R": o.reduce_only,
            "wt": o.working_type,
            "ot": o.orig_type,
            "ps": "BOTH",
            "cp": o.close_position,
            "rp": z8(realized),
            "pP": o.price_protect,
            "si": 0,
            "ss": 0,
            "V": o.stp_mode,
            "pm": o.price_match,
            "gtd": o.good_till_date,
        },
    }


def trade_lite(
    o: Order, spec: SymbolSpec, *, now: int, qty: Decimal, price: Decimal, trade_id: int, maker: bool
) -> Payload:
    pp, qp = spec.price_precision, spec.quantity_precision
    return {
        "e": "TRADE_LITE",
        "E": now,
        "T": now,
        "s": o.symbol,
        "q": fixed(o.orig_qty, qp),
        "p": fixed(o.price, pp),
        "m": maker,
        "c": o.client_order_id,
        "S": o.side,
        "L": fixed(price, pp),
        "l": fixed(qty, qp),
        "t": trade_id,
        "i": o.order_id,
    }


def account_update(
    *,
    now: int,
    asset: str,
    wallet: Decimal,
    symbol: str,
    amount: Decimal,
    entry: Decimal,
    break_even: Decimal,
    realized: Decimal,
    unrealized: Decimal,
    reason: str = "ORDER",
) -> Payload:
    return {
        "e": "ACCOUNT_UPDATE",
        "T": now,
        "E": now,
        "a": {
            "B": [{"a": asset, "wb": f8(wallet), "cw": f8(wallet), "bc": "0"}],
            "P": [
                {
                    "s": symbol,
                    "pa": norm(amount),
                    "ep": norm(entry),
                    "cr": z8(realized),
                    "up": z8(unrealized),
                    "mt": "cross",
                    "iw": "0",
                    "ps": "BOTH",
                    "ma": asset,
                    "bep": norm(break_even),
                }
            ],
            "m": reason,
        },
    }


def balance_update(*, now: int, asset: str, wallet: Decimal, change: Decimal, reason: str) -> Payload:
    """ACCOUNT_UPDATE with balances only (funding fees, insurance clear): ``P`` stays empty."""
    return {
        "e": "ACCOUNT_UPDATE",
        "T": now,
        "E": now,
        "a": {
            "B": [{"a": asset, "wb": f8(wallet), "cw": f8(wallet), "bc": z8(change)}],
            "P": [],
            "m": reason,
        },
    }


def leverage_update(*, now: int, symbol: str, leverage: int) -> Payload:
    return {"e": "ACCOUNT_CONFIG_UPDATE", "T": now, "E": now, "ac": {"s": symbol, "l": leverage}}


def _algo_qty(a: AlgoOrder, spec: SymbolSpec) -> str:
    return fixed(a.quantity, spec.quantity_precision) if a.quantity else "0"


def algo_rest(a: AlgoOrder, spec: SymbolSpec, *, avg: Decimal = ZERO) -> Payload:
    """The algo order object of POST/GET /fapi/v1/algoOrder and openAlgoOrders."""
    pp = spec.price_precision
    return {
        "algoId": a.algo_id,
        "clientAlgoId": a.client_algo_id,
        "algoType": "CONDITIONAL",
        "orderType": a.order_type,
        "symbol": a.symbol,
        "side": a.side,
        "positionSide": "BOTH",
        "timeInForce": a.time_in_force,
        "quantity": _algo_qty(a, spec),
        "algoStatus": a.status,
        "actualOrderId": str(a.actual_order_id) if a.actual_order_id else "",
        "actualPrice": fixed(avg, pp) if avg else "0.00000",
        "triggerPrice": fixed(a.trigger_price, pp),
        "price": fixed(a.price, pp),
        "icebergQuantity": None,
        "tpTriggerPrice": "0.000",
        "tpPrice": "0.000",
        "slTriggerPrice": "0.000",
        "slPrice": "0.000",
        "tpOrderType": "",
        "selfTradePreventionMode": a.stp_mode,
        "workingType": a.working_type,
        "priceMatch": a.price_match,
        "closePosition": a.close_position,
        "priceProtect": a.price_protect,
        "reduceOnly": a.reduce_only,
        "createTime": a.create_time,
        "updateTime": a.update_time,
        "triggerTime": a.trigger_time,
        "goodTillDate": a.good_till_date,
    }


def algo_update(
    a: AlgoOrder, spec: SymbolSpec, *, now: int, avg: Decimal = ZERO, executed: Decimal = ZERO
) -> Payload:
    """ALGO_UPDATE, keys as in the real ws_ALGO_UPDATE_triggered recording."""
    body: Payload = {
        "caid": a.client_algo_id,
        "aid": a.algo_id,
        "at": "CONDITIONAL",
        "o": a.order_type,
        "s": a.symbol,
        "S": a.side,
        "ps": "BOTH",
        "f": a.time_in_force,
        "q": _algo_qty(a, spec),
        "X": a.status,
        "ai": str(a.actual_order_id) if a.actual_order_id else "",
        "ap": fixed(avg, 5) if avg else "0",
        "aq": fixed(executed, spec.quantity_precision) if executed else "0",
        "act": ("MARKET" if a.order_type.endswith("_MARKET") else "LIMIT") if a.actual_order_id else "0",
        "tp": norm(a.trigger_price),
        "p": norm(a.price),
        "V": a.stp_mode,
        "wt": a.working_type,
        "pm": a.price_match,
        "cp": a.close_position,
        "pP": a.price_protect,
        "R": a.reduce_only,
        "tt": a.trigger_time,
        "gtd": a.good_till_date,
    }
    if a.reject_reason:
        body["rm"] = a.reject_reason
    return {"e": "ALGO_UPDATE", "T": now, "E": now, "o": body}


def trade_rest(t: Trade, spec: SymbolSpec) -> Payload:
    """One GET /fapi/v1/userTrades row (marginAsset was dropped by Binance in 2024-06)."""
    return {
        "symbol": t.symbol,
        "id": t.trade_id,
        "orderId": t.order_id,
        "side": t.side,
        "price": norm(t.price),
        "qty": fixed(t.qty, spec.quantity_precision),
        "realizedPnl": z8(t.realized_pnl),
        "quoteQty": fixed(t.price * t.qty, 5),
        "commission": f8(t.commission),
        "commissionAsset": t.commission_asset,
        "time": t.time,
        "positionSide": "BOTH",
        "buyer": t.side == "BUY",
        "maker": t.maker,
    }
