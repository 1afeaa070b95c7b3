"""What every parser shares: the raw type, the guard that turns any failure into ParseError, checks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import ParamSpec, TypeVar

import msgspec

from aegis.binance.errors import ParseError
from aegis.domain import (
    OrderStatus,
    TimeInForce,
)

Raw = bytes | str
P = ParamSpec("P")
T = TypeVar("T")

# RecursionError: a frame nested deeper than the stack (msgspec skips unknown fields recursively)
# is as malformed as a truncated one, not a bug of ours.
FAILURES = (
    msgspec.DecodeError,
    msgspec.ValidationError,
    ValueError,
    TypeError,
    KeyError,
    InvalidOperation,
    RecursionError,
)


def guarded(func: Callable[P, T]) -> Callable[P, T]:
    """Turn any failure while parsing into ParseError carrying the first argument (the raw payload)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except ParseError:
            raise
        except FAILURES as exc:
            raw = args[0] if args else None
            raise ParseError(f"{func.__name__}: {exc}", raw) from exc

    return wrapper


def finite(*values: Decimal) -> None:
    """msgspec accepts "NaN" and "Infinity" as Decimals; no price or quantity may be either."""
    for value in values:
        if not value.is_finite():
            raise ValueError(f"non-finite decimal {value!r}")


def tif(value: str | None) -> TimeInForce | None:
    """GTE_GTC (closePosition orders) and future values are not ours to reject."""
    if value is None:
        return None
    try:
        return TimeInForce(value)
    except ValueError:
        return None


_LIQUIDATION_STATUSES = frozenset({"NEW_INSURANCE", "NEW_ADL"})


def order_status(value: str, executed: Decimal, original: Decimal) -> OrderStatus:
    """Binance's liquidation statuses (NEW_INSURANCE, NEW_ADL) become what the quantities say.

    Dropping such an event as unparseable would lose the fill that closed our position.
    """
    if value in _LIQUIDATION_STATUSES:
        if executed > 0 and executed >= original:
            return OrderStatus.FILLED
        return OrderStatus.PARTIALLY_FILLED if executed > 0 else OrderStatus.NEW
    return OrderStatus(value)


def as_int(value: int | str) -> int:
    return value if isinstance(value, int) else int(value)


def optional_id(value: int | str | None) -> int | None:
    if value is None or value == "" or value == 0:
        return None
    return as_int(value)
