"""What a strategy (or the kill switch, or an operator) asks the order manager for.

An intent says what, not how: the order manager sizes it against the symbol's filters, checks it
against the risk gate, derives its client order ids and sends it exactly once. ``cause`` names what
produced the intent (a candle, a fill, the kill switch): the same strategy, symbol and cause always
give the same client order ids, which is what makes a replay after a crash or a retry harmless.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

import msgspec

from aegis.domain import Order, OrderType, Side, TimeInForce

__all__ = ["Intent", "Outcome", "Submission"]


class Intent(msgspec.Struct, frozen=True):
    """An order, or a target position, with an optional protective stop and take-profit on the exchange.

    Exactly one of ``quantity`` (base asset), ``notional`` (quote asset) or ``target_position``
    (signed base amount the position should end at) is given; ``side`` is required with the first two.
    """

    strategy: str
    symbol: str
    cause: str
    side: Side | None = None
    quantity: Decimal | None = None
    notional: Decimal | None = None
    target_position: Decimal | None = None
    type: OrderType = OrderType.MARKET
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False
    stop_price: Decimal | None = None  # protective STOP_MARKET (closePosition) once the entry filled
    take_profit: Decimal | None = None  # TAKE_PROFIT_MARKET (closePosition) once the entry filled

    def problems(self) -> list[str]:
        """What makes this intent ill-formed (empty when it is fine)."""
        given = [x for x in (self.quantity, self.notional, self.target_position) if x is not None]
        out = []
        if len(given) != 1:
            out.append("exactly one of quantity, notional, target_position")
        if self.target_position is None and self.side is None:
            out.append("side is required with quantity or notional")
        if self.type is OrderType.LIMIT and self.price is None:
            out.append("a LIMIT intent needs a price")
        if self.type not in (OrderType.LIMIT, OrderType.MARKET):
            out.append(f"type {self.type} (entries are LIMIT or MARKET; stops come as stop_price/take_profit)")
        for name, value in (("quantity", self.quantity), ("notional", self.notional), ("price", self.price)):
            if value is not None and not (value.is_finite() and value > 0):
                out.append(f"{name} must be a positive number, got {value}")
        return out


class Outcome(StrEnum):
    PLACED = "placed"  # accepted by the exchange (it may have filled already)
    NOTHING = "nothing"  # a target position already reached: no order needed
    REFUSED = "refused"  # the risk gate or sizing refused it; nothing was sent
    REJECTED = "rejected"  # the exchange rejected it (code and message in ``reason``)
    DUPLICATE = "duplicate"  # journaled before (a replay): its fate is the exchange's, not re-sent
    DRY = "dry"  # --dry-run: sized, checked and journaled, not sent
    FAILED = "failed"  # retries exhausted or its outcome could not be learned in time


class Submission(msgspec.Struct, frozen=True):
    """What became of one intent's main order."""

    client_id: str
    outcome: Outcome
    order: Order | None = None
    reason: str | None = None
    code: int | None = None
