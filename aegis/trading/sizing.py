"""Order sizing: an intent and one symbol's filters in, the exact order Binance accepts, or why not.

Pure functions, no I/O, ``Decimal`` only (no float anywhere, not even in a comparison), in a
private 60-digit context: a caller that changed the thread's decimal context cannot change an
answer (ccxt's precision helpers set ROUND_HALF_UP and trap Underflow there at every call).

Binance's rules (USD-M exchangeInfo filters), checked in Binance's order, so a request that
breaks two filters gets the code Binance would have answered:

- The request: a type sized here, the filters' symbol, status TRADING (-1122), one of quantity /
  notional (neither with closePosition, -4137), a price for LIMIT / STOP / TAKE_PROFIT only, a
  trigger price for conditional types only. Refused as filter ``"REQUEST"``.
- Conditional types (the algo endpoint) first: the trigger price is rounded onto the
  ``(price - minPrice) % tickSize`` grid TOWARD THE MARK, so a protective stop triggers no later
  than asked (BUY STOP / SELL TAKE_PROFIT, above the mark, round down; SELL STOP / BUY
  TAKE_PROFIT round up), then checked against PRICE_FILTER minPrice / maxPrice (-4013 / -4002).
- LOT_SIZE for orders resting at a limit price (LIMIT, STOP, TAKE_PROFIT), MARKET_LOT_SIZE for
  those that execute as market orders (MARKET, STOP_MARKET, TAKE_PROFIT_MARKET): the quantity
  (or notional / the price MIN_NOTIONAL uses) is rounded DOWN onto the ``(q - minQty) % stepSize``
  grid; then <= 0 is -4003, below minQty -4004, above maxQty -4005.
- PRICE_FILTER: the limit price is rounded onto the tick grid in the direction that never makes
  the order more aggressive than asked (BUY down, SELL up), then checked like the trigger.
- Trigger side: above the mark for BUY STOP / SELL TAKE_PROFIT, below it for SELL STOP / BUY
  TAKE_PROFIT, else Binance answers -2021 "Order would immediately trigger".
- PERCENT_PRICE: a BUY price <= mark x multiplierUp (-4016), a SELL price >= mark x multiplierDown
  (-4024); a stop-limit's price in the band around its trigger (the mark when it reaches the
  book); a MARKET order's best counterparty price (``last_price``, else the mark) in the band
  around the mark (-4131).
- MIN_NOTIONAL, after rounding: quantity x the limit price (LIMIT, STOP, TAKE_PROFIT) or the mark
  (MARKET, STOP_MARKET, TAKE_PROFIT_MARKET). Below it: REFUSE (-4164), or RAISE to the smallest
  quantity on the step grid that meets it, within maxQty and ``max_notional``. Reduce-only and
  closePosition orders are exempt as Binance exempts them: a dust position can always be closed.
- A filter field at 0 disables its check. With tickSize (stepSize) 0, prices (quantities) still
  get at most pricePrecision (quantityPrecision) decimals: past that Binance answers -1111.

A refusal names the filter, its limit and the offending value; when only the rounded value
fails (a quantity rounded down to 0, a trigger rounded onto the mark) its reason says so.

ccxt's ``amount_to_precision`` / ``price_to_precision`` truncate amounts to LOT_SIZE's step and
round prices half-up to the nearest tick, both counted from 0 and through floats: they agree
with us where minQty / minPrice sit on the grid and ccxt's nearest tick lies in our direction,
and differ by design elsewhere (a BUY at 100.06 is a 100.1 bid for ccxt, more aggressive than
asked). Where and why, proved on every recorded symbol: tests/test_sizing_ccxt.py.
"""

from __future__ import annotations

import decimal
from decimal import Decimal, localcontext
from enum import StrEnum
from typing import Literal, NamedTuple

import msgspec

from aegis.domain import OrderType, Side, SymbolFilters

ZERO = Decimal(0)
# Every operation below is exact at 60 digits except the two divisions, which round explicitly.
_TRAPS = [decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow]
_CTX = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN, Emin=-999_999, Emax=999_999, traps=_TRAPS)
_FLOOR = decimal.Context(prec=60, rounding=decimal.ROUND_FLOOR, Emin=-999_999, Emax=999_999, traps=_TRAPS)
_CEIL = decimal.Context(prec=60, rounding=decimal.ROUND_CEILING, Emin=-999_999, Emax=999_999, traps=_TRAPS)

_LIMIT_PRICED = frozenset({OrderType.LIMIT, OrderType.STOP, OrderType.TAKE_PROFIT})
_MARKET_EXEC = frozenset({OrderType.MARKET, OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET})
_SIZED = _LIMIT_PRICED | _MARKET_EXEC
_CONDITIONAL = _SIZED - {OrderType.LIMIT, OrderType.MARKET}
_STOPS = frozenset({OrderType.STOP, OrderType.STOP_MARKET})
_UNITS = {p: Decimal(1).scaleb(-p) for p in range(0, 41)}


class MinNotionalPolicy(StrEnum):
    """What to do with an order whose notional is below MIN_NOTIONAL after rounding."""

    REFUSE = "refuse"
    RAISE = "raise"


class SizingRequest(msgspec.Struct, frozen=True):
    """An intent: exactly one of ``quantity`` (base asset) and ``notional`` (quote asset; the
    quantity is notional / the price MIN_NOTIONAL is checked at), or neither with
    ``close_position``; ``price`` for LIMIT / STOP / TAKE_PROFIT; ``trigger_price`` for the
    conditional types."""

    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal | None = None
    notional: Decimal | None = None
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    close_position: bool = False


class SizedOrder(msgspec.Struct, frozen=True):
    """The order to send, every number already on its filter's grid, at the grid's decimals.

    ``notional`` is quantity x the price MIN_NOTIONAL is checked at (the limit price, or the mark
    for MARKET / STOP_MARKET / TAKE_PROFIT_MARKET); 0 for closePosition, whose size is the
    position's when it triggers.
    """

    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal | None
    price: Decimal | None
    trigger_price: Decimal | None
    reduce_only: bool
    close_position: bool
    notional: Decimal

    def wire(self) -> dict[str, str]:
        """The sized parameters as Binance reads them: plain decimals, never an exponent;
        ``triggerPrice`` as the algo endpoint names it (conditional types go there since December
        2025); ``reduceOnly`` / ``closePosition`` only when true (hedge mode refuses even "false")."""
        out = {"symbol": self.symbol, "side": self.side.value, "type": self.type.value}
        if self.quantity is not None:
            out["quantity"] = format(self.quantity, "f")
        if self.price is not None:
            out["price"] = format(self.price, "f")
        if self.trigger_price is not None:
            out["triggerPrice"] = format(self.trigger_price, "f")
        if self.reduce_only:
            out["reduceOnly"] = "true"
        if self.close_position:
            out["closePosition"] = "true"
        return out


class Refusal(msgspec.Struct, frozen=True):
    """Why an intent cannot be sent: the filter it breaks (``"REQUEST"`` when it is the request
    itself), that filter's limit, the offending value, one line for an operator, and the Binance
    error code the refusal spares us (None if Binance has none for it)."""

    filter: str
    limit: str
    value: str
    reason: str
    code: int | None


class _Grid(NamedTuple):  # points origin + k * step (k any integer), with at most `places` decimals
    origin: Decimal
    step: Decimal
    places: int


class _Lot(NamedTuple):
    name: str
    grid: _Grid | None
    min_qty: Decimal
    max_qty: Decimal


class _Rules(NamedTuple):
    price: _Grid | None
    lot: _Lot
    market: _Lot


def _plain(d: Decimal | None) -> str:
    """Text without exponent or trailing zeros (``1E+2`` -> ``100``, ``0.0010`` -> ``0.001``)."""
    if d is None:
        return "none"
    return format(d.normalize(_CTX), "f") if d.is_finite() else str(d)


def _decimals(d: Decimal) -> int:
    exp = d.normalize(_CTX).as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def _grid(step: Decimal, origin: Decimal, precision: int | None) -> _Grid | None:
    """The grid of a filter: ``origin + k * step``; when step is 0 (check disabled), ``precision``
    decimals (Binance's -1111 limit); None when neither is known."""
    if step > 0:
        return _Grid(origin, step, max(_decimals(step), _decimals(origin)))
    if precision is not None and 0 <= precision <= 40:
        return _Grid(ZERO, _UNITS[precision], precision)
    return None


def _snap(x: Decimal, grid: _Grid | None, *, up: bool) -> Decimal:
    """The point of ``grid`` nearest to ``x`` at or below it (at or above it with ``up``), written
    with the grid's decimals; ``x`` itself without a grid. Exact: no context rounding involved."""
    if grid is None:
        return x
    origin, step, places = grid
    rem = (x - origin) % step  # keeps the sign of the dividend
    if rem < 0:
        rem += step
    if rem:
        x = x - rem + step if up else x - rem
    return x.quantize(_UNITS[places]) if places <= 40 else x


_RULES: dict[int, tuple[SymbolFilters, _Rules]] = {}


def _rules(f: SymbolFilters) -> _Rules:
    """The grids of ``f``, computed once per filters object (a memo, invisible to callers)."""
    hit = _RULES.get(id(f))
    if hit is not None and hit[0] is f:
        return hit[1]
    market_grid = _grid(f.market_step_size, f.market_min_qty, f.quantity_precision)
    rules = _Rules(
        _grid(f.tick_size, f.min_price, f.price_precision),
        _Lot("LOT_SIZE", _grid(f.step_size, f.min_qty, f.quantity_precision), f.min_qty, f.max_qty),
        _Lot("MARKET_LOT_SIZE", market_grid, f.market_min_qty, f.market_max_qty),
    )
    if len(_RULES) >= 4096:  # filters are refreshed now and then: old ones must not pile up
        _RULES.clear()
    _RULES[id(f)] = (f, rules)
    return rules


def round_quantity(quantity: Decimal, step: Decimal, min_qty: Decimal) -> Decimal:
    """``quantity`` rounded DOWN onto the ``(q - minQty) % step`` grid (unchanged when step is 0)."""
    with localcontext(_CTX):
        return _snap(quantity, _grid(step, min_qty, None), up=False)


def round_price(price: Decimal, filters: SymbolFilters, *, toward: Literal["down", "up"]) -> Decimal:
    """``price`` rounded onto the ``(p - minPrice) % tickSize`` grid in the direction asked (BUY
    limits ``down``, SELL limits ``up``); to pricePrecision decimals when tickSize is 0."""
    with localcontext(_CTX):
        return _snap(price, _rules(filters).price, up=toward == "up")


def size(
    request: SizingRequest,
    filters: SymbolFilters,
    mark_price: Decimal,
    *,
    last_price: Decimal | None = None,
    min_notional: MinNotionalPolicy = MinNotionalPolicy.REFUSE,
    max_notional: Decimal | None = None,
) -> SizedOrder | Refusal:
    """The exact order for ``request`` under ``filters`` at ``mark_price``, or the refusal that says why.

    ``last_price`` is the best counterparty price a MARKET order would meet (the mark if None).
    ``max_notional`` bounds how far the RAISE policy may raise an order (the risk gate's max
    order notional), and nothing else: the gate checks orders themselves.
    """
    with localcontext(_CTX):
        try:
            bad = _shape(request, filters, mark_price, last_price, max_notional)
            if bad is not None:
                return bad
            return _size(request, filters, mark_price, last_price, min_notional, max_notional)
        except (decimal.InvalidOperation, decimal.Overflow):  # past 60 digits of grid steps: quantity 1E+100
            why = "a number of the request is too large or too fine for 60 digits of its filter's grid"
            return _request("at most 60 significant digits", "", why, None)


def _request(limit: str, value: str, reason: str, code: int | None) -> Refusal:
    return Refusal("REQUEST", limit, value, reason, code)


def _need(what: str, t: OrderType, given: Decimal | None, needed: bool) -> Refusal | None:
    """A parameter sent for ``t`` that it does not take (-1106), or not sent when it must be (-1102)."""
    if (given is not None) == needed:
        return None
    if needed:
        return _request(f"{what} required for {t}", "none", f"{t} needs a {what}", -1102)
    return _request(f"no {what} for {t}", _plain(given), f"{t} takes no {what}", -1106)


def _shape(
    r: SizingRequest, f: SymbolFilters, mark: Decimal, last: Decimal | None, max_notional: Decimal | None
) -> Refusal | None:
    """What makes the request unsendable whatever its numbers; None when it is well formed."""
    t = r.type
    if t not in _SIZED:
        kinds = "LIMIT, MARKET, STOP(_MARKET), TAKE_PROFIT(_MARKET)"
        return _request(f"type in {kinds}", t.value, f"{t} orders are not sized here", -1116)
    if r.symbol != f.symbol:
        return _request(f"symbol {f.symbol}", r.symbol, f"the filters given are {f.symbol}'s", -1121)
    if f.status != "TRADING":
        return _request("status TRADING", f.status, f"{f.symbol} is {f.status}: it takes no orders", -1122)
    for name, value, least in (("mark price", mark, 1), ("last price", last, 1),
                               ("max_notional", max_notional, 0)):  # fmt: skip
        if value is not None and not (value.is_finite() and (value > 0 or (value == 0 and not least))):
            return _request(f"{name} {'>' if least else '>='} 0", _plain(value), f"no usable {name}", None)
    for name, value in (("quantity", r.quantity), ("notional", r.notional), ("price", r.price),
                        ("triggerPrice", r.trigger_price)):  # fmt: skip
        if value is not None and not value.is_finite():
            return _request(f"{name} a finite number", str(value), f"{name} is not a number", -1102)
    if r.close_position:
        if t not in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET):
            why = "closePosition is for STOP_MARKET / TAKE_PROFIT_MARKET only"
            return _request("closePosition with STOP_MARKET / TAKE_PROFIT_MARKET", t.value, why, -1130)
        given = r.quantity if r.quantity is not None else r.notional
        if given is not None:
            why = "closePosition closes the whole position: it takes no quantity"
            return _request("no quantity with closePosition", _plain(given), why, -4137)
        if r.reduce_only:
            why = "closePosition is reduce-only already: Binance refuses both"
            return _request("no reduceOnly with closePosition", "true", why, -1106)
    elif r.quantity is None and r.notional is None:
        return _request("quantity or notional", "none", "neither quantity nor notional given", -1102)
    elif r.quantity is not None and r.notional is not None:
        both = f"{_plain(r.quantity)} / {_plain(r.notional)}"
        return _request("quantity or notional, not both", both, "both quantity and notional given", None)
    return _need("price", t, r.price, t in _LIMIT_PRICED) or _need(
        "triggerPrice", t, r.trigger_price, t in _CONDITIONAL
    )


def _price_filter(raw: Decimal, value: Decimal, f: SymbolFilters, what: str) -> Refusal | None:
    """PRICE_FILTER on ``value``, which is ``raw`` rounded onto the tick grid (``raw`` if not positive)."""
    if value <= 0:
        limit, code, where = "price > 0", -4013, "not above 0"
    elif f.min_price and value < f.min_price:
        limit, code, where = f"minPrice {_plain(f.min_price)}", -4013, f"below minPrice {_plain(f.min_price)}"
    elif f.max_price and value > f.max_price:
        limit, code, where = f"maxPrice {_plain(f.max_price)}", -4002, f"above maxPrice {_plain(f.max_price)}"
    else:
        return None
    moved = "" if value == raw else f" (rounded from {_plain(raw)} onto the tickSize grid)"
    return Refusal("PRICE_FILTER", limit, _plain(value), f"{what} {_plain(value)}{moved} is {where}", code)


def _size(
    r: SizingRequest,
    f: SymbolFilters,
    mark: Decimal,
    last: Decimal | None,
    policy: MinNotionalPolicy,
    max_notional: Decimal | None,
) -> SizedOrder | Refusal:
    # Binance's order of checks, so a request that breaks two filters is refused with the code
    # Binance would answer: /fapi/v1/order checks quantity, price, band, notional; the algo
    # endpoint checks the trigger's PRICE_FILTER first and -2021 after the limit price.
    t, buy = r.type, r.side is Side.BUY
    rules = _rules(f)
    asked, price, trigger, raw = r.price, None, None, None
    if asked is not None:  # never more aggressive than asked: BUY down, SELL up
        price = _snap(asked, rules.price, up=not buy) if asked > 0 else asked
    above = buy == (t in _STOPS)  # BUY STOP and SELL TAKE_PROFIT wait for the price to rise
    if r.trigger_price is not None:  # toward the mark: a protective stop triggers no later than asked
        raw = r.trigger_price
        trigger = _snap(raw, rules.price, up=not above) if raw > 0 else raw
        bad = _price_filter(raw, trigger, f, "triggerPrice")
        if bad is not None:
            return bad
    at = price if price is not None else mark  # where MIN_NOTIONAL is checked, and notional converted
    if asked is not None and at <= 0 and r.notional is not None:  # no quantity from such a price
        bad = _price_filter(asked, at, f, "price")
        if bad is not None:
            return bad

    lot = rules.market if t in _MARKET_EXEC else rules.lot
    qty: Decimal | None = None
    if not r.close_position:
        sized = _quantity(r, lot, at)
        if isinstance(sized, Refusal):
            return sized
        qty = sized
    if asked is not None:  # at is the rounded limit price
        bad = _price_filter(asked, at, f, "price")
        if bad is not None:
            return bad

    if trigger is not None and ((trigger <= mark) if above else (trigger >= mark)):
        where = "above" if above else "below"
        moved = "" if trigger == raw else f" (rounded toward the mark from {_plain(raw)})"
        why = f"{r.side} {t}: triggerPrice {_plain(trigger)}{moved} is not {where} mark {_plain(mark)}"
        return _request(f"triggerPrice {where} mark {_plain(mark)}", _plain(trigger), why, -2021)
    bad = _percent_price(t, buy, price, trigger, mark, last, f)
    if bad is not None:
        return bad

    if qty is None:
        return SizedOrder(r.symbol, r.side, t, None, price, trigger, r.reduce_only, True, ZERO)
    notional = qty * at
    floor = f.min_notional
    if floor > 0 and notional < floor and not r.reduce_only:
        at_name = "price" if price is not None else "mark"
        raised = _min_notional(qty, at, at_name, lot, f, policy, max_notional)
        if isinstance(raised, Refusal):
            return raised
        qty, notional = raised, raised * at
    return SizedOrder(r.symbol, r.side, t, qty, price, trigger, r.reduce_only, False, notional)


def _quantity(r: SizingRequest, lot: _Lot, at: Decimal) -> Decimal | Refusal:
    """The quantity rounded DOWN onto the lot's grid, inside its minQty / maxQty."""
    if r.quantity is not None:
        raw = r.quantity
    else:  # _shape made sure there is a notional; rounded down, like the step grid after it
        raw = _FLOOR.divide(r.notional if r.notional is not None else ZERO, at)
    qty = _snap(raw, lot.grid, up=False) if raw > 0 else raw
    if qty <= 0:
        limit, code, where = "quantity > 0", -4003, "not above 0"
    elif lot.min_qty and qty < lot.min_qty:
        limit, code, where = f"minQty {_plain(lot.min_qty)}", -4004, "below"
    elif lot.max_qty and qty > lot.max_qty:
        limit, code, where = f"maxQty {_plain(lot.max_qty)}", -4005, "above"
    else:
        return qty
    source = "" if r.notional is None else f"notional {_plain(r.notional)} / {_plain(at)} = "
    moved = f" ({source}{_plain(raw)}, rounded down onto the stepSize grid)" if qty != raw else ""
    moved = moved or (f" ({source[:-3]})" if source else "")
    where = "not above 0" if code == -4003 else f"{where} {lot.name} {limit}"
    return Refusal(lot.name, limit, _plain(qty), f"quantity {_plain(qty)}{moved} is {where}", code)


def _min_notional(
    qty: Decimal, at: Decimal, at_name: str, lot: _Lot, f: SymbolFilters, policy: str, most: Decimal | None
) -> Decimal | Refusal:
    """Below MIN_NOTIONAL: the refusal (REFUSE), or the smallest quantity on the grid that meets it
    (RAISE) when maxQty and ``max_notional`` allow it."""
    floor, notional = f.min_notional, qty * at
    short = f"{_plain(qty)} x {at_name} {_plain(at)} = {_plain(notional)}, below MIN_NOTIONAL {_plain(floor)}"
    limit = f"notional {_plain(floor)}"
    if policy != MinNotionalPolicy.RAISE:
        return Refusal("MIN_NOTIONAL", limit, _plain(notional), f"{short} (reduce-only is exempt)", -4164)
    # the quotient rounded up at 60 digits, then up onto the grid: the smallest grid point that meets it
    need = max(_snap(_CEIL.divide(floor, at), lot.grid, up=True), qty)
    if lot.max_qty and need > lot.max_qty:
        why = f"{short}; raising needs {_plain(need)}, above {lot.name} maxQty {_plain(lot.max_qty)}"
        return Refusal("MIN_NOTIONAL", limit, _plain(notional), why, -4164)
    if most is not None and need * at > most:
        why = f"{short}; raising to {_plain(need)} is {_plain(need * at)}, above max_notional {_plain(most)}"
        return Refusal("MIN_NOTIONAL", limit, _plain(notional), why, -4164)
    return need


def _percent_price(
    t: OrderType,
    buy: bool,
    price: Decimal | None,
    trigger: Decimal | None,
    mark: Decimal,
    last: Decimal | None,
    f: SymbolFilters,
) -> Refusal | None:
    """PERCENT_PRICE: a limit price inside the band around the mark (around the trigger for a
    stop-limit); for MARKET, the best counterparty price inside the band around the mark."""
    up, down = f.percent_up, f.percent_down
    if price is not None:
        ref, ref_name, code_up, code_down = mark, "mark", -4016, -4024
        if trigger is not None:
            ref, ref_name = trigger, "triggerPrice"
        value, what = price, "price"
    elif t is OrderType.MARKET:
        ref, ref_name, code_up, code_down = mark, "mark", -4131, -4131
        value, what = (last if last is not None else mark), ("best ask" if buy else "best bid")
    else:
        return None
    if buy and up and value > ref * up:
        cap, code = f"<= {_plain(ref * up)} ({ref_name} {_plain(ref)} x multiplierUp {_plain(up)})", code_up
    elif not buy and down and value < ref * down:
        cap = f">= {_plain(ref * down)} ({ref_name} {_plain(ref)} x multiplierDown {_plain(down)})"
        code = code_down
    else:
        return None
    why = f"{'BUY' if buy else 'SELL'} {t}: {what} {_plain(value)} is not {cap}"
    return Refusal("PERCENT_PRICE", f"{what} {cap}", _plain(value), why, code)


__all__ = [
    "MinNotionalPolicy", "Refusal", "SizedOrder", "SizingRequest", "round_price", "round_quantity", "size"
]
