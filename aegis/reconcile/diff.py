"""The one comparison of the engine's account view with the exchange's: what differs, item by item.

Used by the reconciler (every pass) and by the user stream's silence check. Items are keyed as
the exchange keys them: positions by (symbol, positionSide), orders by client order id, algo
orders by client algo id, balances by asset. An item that an event changed after the snapshot's
``as_of`` time is in flight, not a mismatch: the snapshot may predate that event.

Compared: position amount and entry price; open orders' status and filled quantity; open algo
orders' status; wallet balances. Not compared: mark prices, unrealized PnL and available balance,
which move with the market without any account event.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

import msgspec

from aegis.domain import ZERO
from aegis.state import AccountSnapshot, StateStore
from aegis.state.store import algo_key, balance_key, order_key, position_key

__all__ = ["Kind", "Mismatch", "diff"]


class Kind(StrEnum):
    POSITION = "position"
    ORDER = "order"
    ALGO_ORDER = "algo_order"
    BALANCE = "balance"


class Mismatch(msgspec.Struct, frozen=True):
    """One item on which the engine and the exchange disagree (``None`` = that side has nothing)."""

    kind: Kind
    key: str
    engine: str | None
    exchange: str | None

    @property
    def phantom(self) -> bool:
        """The engine believes in something the exchange does not have."""
        return self.exchange is None

    @property
    def missed(self) -> bool:
        """The exchange has something the engine does not know."""
        return self.engine is None

    def __str__(self) -> str:
        what = "phantom " if self.phantom else "missed " if self.missed else ""
        return f"{what}{self.kind} {self.key}: engine {self.engine or '-'}, exchange {self.exchange or '-'}"


def diff(state: StateStore, snapshot: AccountSnapshot) -> list[Mismatch]:
    """Every difference between the store and ``snapshot`` that no later event explains."""
    return [
        *_positions(state, snapshot),
        *_orders(state, snapshot),
        *_algo_orders(state, snapshot),
        *_balances(state, snapshot),
    ]


def _amount(amount: Decimal, entry: Decimal) -> str:
    return f"{amount} @ {entry}"


def _positions(state: StateStore, snapshot: AccountSnapshot) -> list[Mismatch]:
    truth = {(p.symbol, p.position_side): p for p in snapshot.positions if not p.is_flat}
    ours = {(p.symbol, p.position_side): p for p in state.positions() if not p.is_flat}
    out = []
    for key in sorted(truth.keys() | ours.keys()):
        if state.touched_after(position_key(*key), snapshot.as_of_ms):
            continue
        have, real = ours.get(key), truth.get(key)
        # Numbers compare by value: "0.11" from an event and "0.110" from REST are the same position.
        if (have and (have.amount, have.entry_price)) == (real and (real.amount, real.entry_price)):
            continue
        have_s = None if have is None else _amount(have.amount, have.entry_price)
        real_s = None if real is None else _amount(real.amount, real.entry_price)
        out.append(Mismatch(Kind.POSITION, f"{key[0]} {key[1]}", have_s, real_s))
    return out


def _orders(state: StateStore, snapshot: AccountSnapshot) -> list[Mismatch]:
    truth = {o.client_order_id: o for o in snapshot.open_orders if o.status.is_open}
    ours = {o.client_order_id: o for o in state.open_orders()}
    out = []
    for cid in sorted(truth.keys() | ours.keys()):
        if state.touched_after(order_key(cid), snapshot.as_of_ms):
            continue
        have, real = ours.get(cid), truth.get(cid)
        if (have and (have.symbol, have.status, have.executed_qty)) == (real and (real.symbol, real.status, real.executed_qty)):
            continue
        have_s = None if have is None else f"{have.symbol} {have.status} filled {have.executed_qty}"
        real_s = None if real is None else f"{real.symbol} {real.status} filled {real.executed_qty}"
        out.append(Mismatch(Kind.ORDER, cid, have_s, real_s))
    return out


def _algo_orders(state: StateStore, snapshot: AccountSnapshot) -> list[Mismatch]:
    truth = {a.client_algo_id: a for a in snapshot.open_algo_orders}
    ours = {a.client_algo_id: a for a in state.open_algo_orders()}
    out = []
    for cid in sorted(truth.keys() | ours.keys()):
        if state.touched_after(algo_key(cid), snapshot.as_of_ms):
            continue
        have, real = ours.get(cid), truth.get(cid)
        if (have and (have.symbol, have.type, have.status, have.trigger_price)) == (
            real and (real.symbol, real.type, real.status, real.trigger_price)
        ):
            continue
        have_s = None if have is None else f"{have.symbol} {have.type} {have.status} trigger {have.trigger_price}"
        real_s = None if real is None else f"{real.symbol} {real.type} {real.status} trigger {real.trigger_price}"
        out.append(Mismatch(Kind.ALGO_ORDER, cid, have_s, real_s))
    return out


def _balances(state: StateStore, snapshot: AccountSnapshot) -> list[Mismatch]:
    truth = {b.asset: b.wallet_balance for b in snapshot.balances if b.wallet_balance != ZERO}
    ours = {b.asset: b.wallet_balance for b in state.balances() if b.wallet_balance != ZERO}
    out = []
    for asset in sorted(truth.keys() | ours.keys()):
        if state.touched_after(balance_key(asset), snapshot.as_of_ms):
            continue
        have, real = ours.get(asset), truth.get(asset)
        if have != real:
            out.append(Mismatch(Kind.BALANCE, asset, _text(have), _text(real)))
    return out


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")
