"""User data stream events: every message of the listenKey stream into a domain event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from aegis.binance import wire
from aegis.binance.parse.common import Raw, as_int, finite, guarded, optional_id, order_status, tif
from aegis.domain import (
    ZERO,
    AccountConfigUpdate,
    AccountUpdate,
    AlgoUpdate,
    Balance,
    ExecutionType,
    Fill,
    ListenKeyExpired,
    MarginCall,
    Order,
    OrderType,
    OrderUpdate,
    Position,
    Side,
    TradeLite,
    UserEvent,
)

# --- user data stream --------------------------------------------------------------------


class _Head(msgspec.Struct):
    e: str = ""
    data: msgspec.Raw = msgspec.Raw(b"")


_HEAD = msgspec.json.Decoder(_Head)
_OTU = msgspec.json.Decoder(wire.WsOrderTradeUpdate)
_TRADE_LITE = msgspec.json.Decoder(wire.WsTradeLite)
_ACCOUNT_UPDATE = msgspec.json.Decoder(wire.WsAccountUpdate)
_MARGIN_CALL = msgspec.json.Decoder(wire.WsMarginCall)
_CONFIG = msgspec.json.Decoder(wire.WsAccountConfigUpdate)
_ALGO_UPDATE = msgspec.json.Decoder(wire.WsAlgoUpdate)
_EXPIRED = msgspec.json.Decoder(wire.WsListenKeyExpired)

_FILL_EXECUTIONS = (ExecutionType.TRADE, ExecutionType.CALCULATED)


def _order_trade_update(raw: Raw) -> OrderUpdate:
    ev = _OTU.decode(raw)
    o = ev.o
    finite(o.q, o.p, o.ap, o.l, o.z, o.L, o.sp, o.n, o.rp)
    execution = ExecutionType(o.x)
    order = Order(
        symbol=o.s,
        order_id=o.i,
        client_order_id=o.c,
        side=Side(o.S),
        type=OrderType(o.o),
        status=order_status(o.X, o.z, o.q),
        price=o.p,
        orig_qty=o.q,
        executed_qty=o.z,
        avg_price=o.ap,
        time_in_force=tif(o.f),
        reduce_only=o.R,
        update_time_ms=o.T,
        stop_price=o.sp,
        close_position=o.cp,
        position_side=o.ps,
    )
    fill = None
    if execution in _FILL_EXECUTIONS and o.l > 0:
        fill = Fill(o.s, o.i, o.c, o.t, order.side, o.L, o.l, o.n, o.N, o.rp, o.m, o.T)
    expire = None if o.er in (None, "", 0, "0") else str(o.er)
    return OrderUpdate(ev.E, ev.T, execution, order, fill, expire)


def _trade_lite(raw: Raw) -> TradeLite:
    ev = _TRADE_LITE.decode(raw)
    finite(ev.L, ev.l)
    # TRADE_LITE carries no fee and no realized PnL: the ORDER_TRADE_UPDATE for the same trade does.
    fill = Fill(ev.s, ev.i, ev.c, ev.t, Side(ev.S), ev.L, ev.l, ZERO, "", ZERO, ev.m, ev.T)
    return TradeLite(ev.E, fill)


def _account_update(raw: Raw) -> AccountUpdate:
    ev = _ACCOUNT_UPDATE.decode(raw)
    balances = []
    for b in ev.a.B:
        finite(b.wb)
        balances.append(Balance(b.a, b.wb, b.cw, None, ev.T))
    positions = []
    for p in ev.a.P:
        finite(p.pa, p.ep, p.up)
        positions.append(Position(p.s, p.pa, p.ep, p.up, ev.T, p.ps))
    return AccountUpdate(ev.E, ev.T, ev.a.m, tuple(balances), tuple(positions))


def _margin_call(raw: Raw) -> MarginCall:
    ev = _MARGIN_CALL.decode(raw)
    # MARGIN_CALL has no entry price; ZERO here means "not reported", not a real price.
    positions = tuple(Position(p.s, p.pa, ZERO, p.up, ev.E, p.ps) for p in ev.p)
    return MarginCall(ev.E, ev.cw, positions)


def _account_config(raw: Raw) -> AccountConfigUpdate:
    ev = _CONFIG.decode(raw)
    return AccountConfigUpdate(
        ev.E,
        symbol=ev.ac.s if ev.ac else None,
        leverage=ev.ac.l if ev.ac else None,
        multi_assets=ev.ai.j if ev.ai else None,
    )


def _algo_update(raw: Raw) -> AlgoUpdate:
    ev = _ALGO_UPDATE.decode(raw)
    o = ev.o
    finite(o.q, o.tp)
    return AlgoUpdate(
        ev.E,
        o.s,
        o.aid,
        o.caid,
        Side(o.S),
        OrderType(o.o),
        o.X,
        o.q,
        o.tp,
        triggered_order_id=optional_id(o.ai),
        reduce_only=o.R,
        close_position=o.cp,
        reject_reason=o.rm or None,
    )


def _listen_key_expired(raw: Raw) -> ListenKeyExpired:
    ev = _EXPIRED.decode(raw)
    return ListenKeyExpired(as_int(ev.E), ev.listenKey)


_USER_PARSERS: dict[str, Callable[[Raw], Any]] = {
    "ORDER_TRADE_UPDATE": _order_trade_update,
    "TRADE_LITE": _trade_lite,
    "ACCOUNT_UPDATE": _account_update,
    "MARGIN_CALL": _margin_call,
    "ACCOUNT_CONFIG_UPDATE": _account_config,
    "ALGO_UPDATE": _algo_update,
    "listenKeyExpired": _listen_key_expired,
}

@guarded
def parse_user_event(raw: Raw) -> UserEvent | None:
    """A user data stream message into a domain event; None for event types we do not use.

    Unknown types (Binance adds some, e.g. STRATEGY_UPDATE, GRID_UPDATE) are not errors.
    A combined-stream envelope ``{"stream","data"}`` is unwrapped.
    """
    head = _HEAD.decode(raw)
    if not head.e and head.data:
        raw = bytes(head.data)
        head = _HEAD.decode(raw)
    parser = _USER_PARSERS.get(head.e)
    if parser is None:
        return None
    event: UserEvent = parser(raw)
    return event
