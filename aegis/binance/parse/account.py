"""Account payloads: orders, algo orders, trades, positions, balances, listenKey, leverage."""

from __future__ import annotations

import msgspec

from aegis.binance import wire
from aegis.binance.parse.common import Raw, as_int, finite, guarded, optional_id, order_status, tif
from aegis.domain import (
    AlgoOrder,
    Balance,
    Fill,
    Income,
    Order,
    OrderType,
    Position,
    Side,
)

# --- orders, trades, account -------------------------------------------------------------

_ORDER = msgspec.json.Decoder(wire.OrderResponse)
_ORDERS = msgspec.json.Decoder(list[wire.OrderResponse])
_ALGO = msgspec.json.Decoder(wire.AlgoOrderResponse)
_ALGO_CANCEL = msgspec.json.Decoder(wire.AlgoCancel)
_ALGOS = msgspec.json.Decoder(list[wire.AlgoOrderResponse])
_POSITION_MODE = msgspec.json.Decoder(wire.PositionMode)
_TRADES = msgspec.json.Decoder(list[wire.UserTrade])
_POSITIONS = msgspec.json.Decoder(list[wire.PositionRisk])
_ACCOUNT = msgspec.json.Decoder(wire.Account)
_LISTEN_KEY = msgspec.json.Decoder(wire.ListenKey)
_LEVERAGE = msgspec.json.Decoder(wire.Leverage)


def _order(w: wire.OrderResponse) -> Order:
    finite(w.price, w.origQty, w.executedQty, w.avgPrice, w.stopPrice)
    return Order(
        symbol=w.symbol,
        order_id=w.orderId,
        client_order_id=w.clientOrderId,
        side=Side(w.side),
        type=OrderType(w.type),
        status=order_status(w.status, w.executedQty, w.origQty),
        price=w.price,
        orig_qty=w.origQty,
        executed_qty=w.executedQty,
        avg_price=w.avgPrice,
        time_in_force=tif(w.timeInForce),
        reduce_only=w.reduceOnly,
        update_time_ms=w.updateTime or w.time,
        stop_price=w.stopPrice,
        close_position=w.closePosition,
        position_side=w.positionSide,
    )


@guarded
def parse_order(raw: Raw) -> Order:
    """POST / GET / DELETE /fapi/v1/order."""
    return _order(_ORDER.decode(raw))


@guarded
def parse_orders(raw: Raw) -> list[Order]:
    """GET /fapi/v1/openOrders (and allOrders)."""
    return [_order(w) for w in _ORDERS.decode(raw)]


@guarded
def parse_algo_order(raw: Raw) -> AlgoOrder:
    """POST / GET /fapi/v1/algoOrder."""
    return _algo(_ALGO.decode(raw))


@guarded
def parse_algo_orders(raw: Raw) -> list[AlgoOrder]:
    """GET /fapi/v1/openAlgoOrders."""
    return [_algo(w) for w in _ALGOS.decode(raw)]


@guarded
def parse_position_mode(raw: Raw) -> bool:
    """GET /fapi/v1/positionSide/dual: True when the account is in hedge mode."""
    flag = _POSITION_MODE.decode(raw).dualSidePosition
    if isinstance(flag, str):
        if flag.lower() not in ("true", "false"):
            raise ValueError(f"dualSidePosition {flag!r}")
        return flag.lower() == "true"
    return flag


def _algo(w: wire.AlgoOrderResponse) -> AlgoOrder:
    finite(w.quantity, w.triggerPrice, w.price)
    return AlgoOrder(
        symbol=w.symbol,
        algo_id=w.algoId,
        client_algo_id=w.clientAlgoId,
        side=Side(w.side),
        type=OrderType(w.orderType),
        status=w.algoStatus,
        quantity=w.quantity,
        trigger_price=w.triggerPrice,
        price=w.price,
        reduce_only=w.reduceOnly,
        close_position=w.closePosition,
        update_time_ms=w.updateTime,
        triggered_order_id=optional_id(w.actualOrderId),
        position_side=w.positionSide,
    )


@guarded
def parse_algo_cancel(raw: Raw) -> int:
    """DELETE /fapi/v1/algoOrder: the cancelled algo id (the final state arrives as ALGO_UPDATE)."""
    return _ALGO_CANCEL.decode(raw).algoId


@guarded
def parse_user_trades(raw: Raw) -> list[Fill]:
    """GET /fapi/v1/userTrades: fills without client order ids (Binance does not return them)."""
    out = []
    for t in _TRADES.decode(raw):
        finite(t.price, t.qty, t.commission, t.realizedPnl)
        out.append(
            Fill(
                symbol=t.symbol,
                order_id=t.orderId,
                client_order_id="",
                trade_id=t.id,
                side=Side(t.side),
                price=t.price,
                quantity=t.qty,
                commission=t.commission,
                commission_asset=t.commissionAsset,
                realized_pnl=t.realizedPnl,
                maker=t.maker,
                time_ms=t.time,
            )
        )
    return out


@guarded
def parse_position_risk(raw: Raw) -> list[Position]:
    """GET /fapi/v3/positionRisk: one entry per symbol and side with a position."""
    out = []
    for p in _POSITIONS.decode(raw):
        finite(p.positionAmt, p.entryPrice, p.unRealizedProfit)
        out.append(
            Position(
                symbol=p.symbol,
                amount=p.positionAmt,
                entry_price=p.entryPrice,
                unrealized_pnl=p.unRealizedProfit,
                update_time_ms=as_int(p.updateTime),
                position_side=p.positionSide,
            )
        )
    return out


@guarded
def parse_account_balances(raw: Raw) -> list[Balance]:
    """GET /fapi/v3/account ``assets`` (per margin asset)."""
    out = []
    for a in _ACCOUNT.decode(raw).assets:
        finite(a.walletBalance)
        out.append(
            Balance(a.asset, a.walletBalance, a.crossWalletBalance, a.availableBalance, as_int(a.updateTime))
        )
    return out


@guarded
def parse_listen_key(raw: Raw) -> str:
    """POST / PUT /fapi/v1/listenKey."""
    key = _LISTEN_KEY.decode(raw).listenKey
    if not key:
        raise ValueError("empty listenKey")
    return key


@guarded
def parse_leverage(raw: Raw) -> int:
    """POST /fapi/v1/leverage."""
    return _LEVERAGE.decode(raw).leverage


_INCOME = msgspec.json.Decoder(list[wire.IncomeRow])


@guarded
def parse_income(raw: Raw) -> list[Income]:
    """GET /fapi/v1/income rows, oldest first."""
    out = []
    for r in _INCOME.decode(raw):
        finite(r.income)
        out.append(Income(r.symbol, r.incomeType, r.income, r.asset, r.time, r.tranId, str(r.tradeId or "")))
    return out
