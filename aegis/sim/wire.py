"""Decimal wire strings in Binance's styles: never an exponent, trailing zeros as Binance shows them."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

_QUANTA = [Decimal(1).scaleb(-p) for p in range(19)]


def fixed(d: Decimal, places: int) -> str:
    """Wire form at ``places`` decimals (Binance's trailing-zero style), never losing digits."""
    if places:
        # Already at ``places`` (most candle and order fields): str() is then the plain form with
        # exactly that many decimals (it only uses an exponent when "E" shows), what format(d, "f")
        # gives, without the cost of as_tuple() (a kline event formats eleven of these).
        text = str(d)
        if len(text) > places and text[-places - 1] == "." and "E" not in text:
            return text
    exp = d.as_tuple().exponent
    if exp == -places:
        return format(d, "f")  # already at ``places`` (most candle fields): what quantize would give
    q = _QUANTA[places] if places < 19 else Decimal(1).scaleb(-places)
    if (isinstance(exp, int) and exp >= -places) or d == d.quantize(q, rounding=ROUND_DOWN):
        return format(d.quantize(q), "f")
    return format(d.normalize(), "f")


def z8(d: Decimal) -> str:
    """8 decimals, or "0" for zero (user-stream style)."""
    return "0" if not d else fixed(d, 8)


def f8(d: Decimal) -> str:
    """8 decimals always (REST account style: "15000.00000000")."""
    return fixed(d, 8)


def norm(d: Decimal) -> str:
    """Shortest exact form ("91739.9", "0")."""
    return "0" if not d else format(d.normalize(), "f")
