"""Order filter validation, as Binance applies it, with Binance's codes and messages."""

from __future__ import annotations

from decimal import Decimal

from aegis.sim import errors
from aegis.sim.symbols import ZERO, SymbolSpec, decimals_of


def check_quantity(spec: SymbolSpec, qty: Decimal, *, market: bool) -> None:
    """LOT_SIZE (MARKET_LOT_SIZE for market orders): -4003, -4004, -4005, then -1111, -4023."""
    if qty <= ZERO:
        raise errors.bad(-4003, "Quantity less than or equal to zero.")
    lo, hi, step = (
        (spec.market_min_qty, spec.market_max_qty, spec.market_step)
        if market
        else (spec.min_qty, spec.max_qty, spec.step)
    )
    if lo and qty < lo:
        raise errors.bad(-4004, "Quantity less than min quantity.")
    if hi and qty > hi:
        raise errors.bad(-4005, "Quantity greater than max quantity.")
    if decimals_of(qty) > spec.qty_decimals:
        raise errors.precision()
    if step and (qty - lo) % step != ZERO:
        raise errors.bad(-4023, "Qty not increased by step size.")


def check_price(spec: SymbolSpec, price: Decimal) -> None:
    """PRICE_FILTER for price and stop/trigger prices: -4013, -4002, then -1111, -4014."""
    if price <= ZERO or (spec.min_price and price < spec.min_price):
        raise errors.bad(-4013, "Price less than min price.")
    if spec.max_price and price > spec.max_price:
        raise errors.bad(-4002, "Price greater than max price.")
    if decimals_of(price) > spec.price_decimals:
        raise errors.precision()
    if spec.tick and (price - spec.min_price) % spec.tick != ZERO:
        raise errors.bad(-4014, "Price not increased by tick size.")


def check_percent_price(spec: SymbolSpec, side: str, price: Decimal, mark: Decimal) -> None:
    """PERCENT_PRICE for LIMIT orders: BUY <= mark*up (-4016), SELL >= mark*down (-4024)."""
    if side == "BUY" and spec.multiplier_up:
        cap = mark * spec.multiplier_up
        if price > cap:
            raise errors.bad(-4016, f"Limit price can't be higher than {fmt_tick(spec, cap, down=True)}.")
    elif side == "SELL" and spec.multiplier_down:
        floor = mark * spec.multiplier_down
        if price < floor:
            raise errors.bad(-4024, f"Limit price can't be lower than {fmt_tick(spec, floor, down=False)}.")


def check_market_percent_price(spec: SymbolSpec, side: str, fill_price: Decimal, mark: Decimal) -> None:
    """MARKET orders: the best counterparty price must itself pass PERCENT_PRICE (-4131)."""
    too_high = side == "BUY" and spec.multiplier_up and fill_price > mark * spec.multiplier_up
    too_low = side == "SELL" and spec.multiplier_down and fill_price < mark * spec.multiplier_down
    if too_high or too_low:
        raise errors.bad(-4131, "The counterparty's best price does not meet the PERCENT_PRICE filter limit.")


def check_min_notional(spec: SymbolSpec, price: Decimal, qty: Decimal, *, reduce_only: bool) -> None:
    """MIN_NOTIONAL (-4164); reduce-only orders are exempt, as the message says."""
    if reduce_only or not spec.min_notional:
        return
    if price * qty < spec.min_notional:
        raise errors.bad(
            -4164,
            f"Order's notional must be no smaller than {format(spec.min_notional.normalize(), 'f')} "
            "(unless you choose reduce only).",
        )


def fmt_tick(spec: SymbolSpec, value: Decimal, *, down: bool) -> str:
    """``value`` rounded onto the tick grid (down for caps, up for floors), as a wire string."""
    tick = spec.tick or Decimal(1).scaleb(-spec.price_precision)
    steps = (value / tick).to_integral_value(rounding="ROUND_FLOOR" if down else "ROUND_CEILING")
    return format((steps * tick).quantize(tick), "f")

