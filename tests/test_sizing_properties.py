"""Sizing, proved over every symbol of both recorded real exchangeInfos (mainnet 347, testnet 660).

For arbitrary intents (quantities, notionals, prices, triggers, marks, last prices, sides,
types, reduce-only, closePosition, both MIN_NOTIONAL policies), on every symbol:

(a) every order ``size`` accepts passes the simulator's own validation, run on the wire strings
    exactly as the simulator parses them: ``aegis.sim.filters`` in the order
    ``Exchange._check_filters`` runs them for LIMIT / MARKET (with the best counterparty price
    as the -4131 fill price), and as ``Exchange.new_algo_order`` runs them for conditional
    types, including its -2021 trigger test (``aegis.sim.algo.triggers``). The simulator's
    ``SymbolSpec`` comes from the same exchangeInfo through ``aegis.sim.symbols.ExchangeInfo``,
    as the simulator loads it. The numbers are also exactly the ones an independent rounding
    in ``Fraction`` gives (BUY down, SELL up, triggers toward the mark, quantities down), and an
    order that is not reduce-only meets MIN_NOTIONAL (RAISE: with the smallest such quantity);
(b) every refusal names a filter the request really violates, checked on its own in
    ``Fraction``: for the unrounded request, or, where only rounding made it violate (a
    quantity rounded down below the first step, a trigger rounded onto the mark, a SELL price
    rounded up past maxPrice), on the rounded value, and then the reason says "rounded"; and
    where the simulator checks that filter, it answers the same code for the rounded order
    (the checks run in Binance's order, so a request breaking two filters gets Binance's code);
(c) wire strings carry no exponent, no more decimals than the step / tick, and read back as
    the same Decimal.

Symbols that are not TRADING are refused (-1122), and are also sized as if they were, so
every filter set of both files goes through the rules (testnet OPENUSDT has tickSize 0).
"""

from __future__ import annotations

import decimal
import functools
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.binance.parse.market import parse_exchange_info
from aegis.domain import OrderType, Side, SymbolFilters
from aegis.sim import filters as simf
from aegis.sim.algo import triggers
from aegis.sim.config import SimConfig
from aegis.sim.errors import BinanceError
from aegis.sim.params import decimal as sim_decimal
from aegis.sim.symbols import ExchangeInfo, SymbolSpec
from aegis.trading.sizing import MinNotionalPolicy, Refusal, SizedOrder, SizingRequest, size
from tests.fixtures import binance_raw

VENUES = {"mainnet": "fapi_v1_exchangeInfo.json", "testnet": "fapi_v1_exchangeInfo_testnet_2025-12.json"}
LIMIT_PRICED = {OrderType.LIMIT, OrderType.STOP, OrderType.TAKE_PROFIT}
MARKET_EXEC = {OrderType.MARKET, OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET}
CONDITIONAL = {OrderType.STOP, OrderType.STOP_MARKET, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_MARKET}
SIZED = LIMIT_PRICED | MARKET_EXEC


@functools.cache
def venue(name: str) -> tuple[dict[str, SymbolFilters], dict[str, SymbolSpec]]:
    """The engine's filters and the simulator's specs, both from the same recorded payload."""
    raw = binance_raw(VENUES[name])
    engine = parse_exchange_info(raw)
    assert engine.skipped == ()
    sim = ExchangeInfo(json.loads(raw), SimConfig()).symbols
    assert engine.symbols.keys() == sim.keys()
    return engine.symbols, sim


CASES = [(v, s) for v in VENUES for s in sorted(venue(v)[0])]


# --- strategies ------------------------------------------------------------------------------


@functools.cache
def spread(lo: Decimal, hi: Decimal, digits: int = 8) -> st.SearchStrategy[Decimal]:
    """Positive decimals of 1..``digits`` significant digits, log-spread a little past [lo, hi]."""
    return st.builds(
        lambda e, m: Decimal(m).scaleb(e),
        st.integers(lo.adjusted() - digits, hi.adjusted() + 1),
        st.integers(1, 10**digits - 1),
    ).filter(lambda d: lo / 10 <= d <= hi * 10)


def factor(lo: str, hi: str) -> st.SearchStrategy[Decimal]:
    """A multiplier in [lo, hi] of up to 5 decimals: a price near another, often off any tick."""
    return st.integers(int(Decimal(lo) * 100_000), int(Decimal(hi) * 100_000)).map(lambda k: Decimal(k).scaleb(-5))


WIDE, NARROW, TRIGGER, STOP_LIMIT, LAST = (
    factor("0.5", "1.5"), factor("0.93", "1.07"), factor("0.8", "1.2"), factor("0.9", "1.1"), factor("0.9", "1.1")
)  # fmt: skip
TYPES = st.sampled_from([*sorted(SIZED), OrderType.LIMIT, OrderType.MARKET] * 3 + [OrderType.TRAILING_STOP_MARKET])


@dataclass(frozen=True)
class Case:
    request: SizingRequest
    mark: Decimal
    last: Decimal | None
    policy: MinNotionalPolicy
    max_notional: Decimal | None


class Ranges:
    """The strategies of one symbol, built once (building them per example costs more than sizing)."""

    def __init__(self, f: SymbolFilters) -> None:
        lo_p = f.min_price or f.tick_size or Decimal("0.00000001")
        hi_p = f.max_price or Decimal(10_000_000)
        lo_q = f.min_qty or f.step_size or Decimal("0.001")
        hi_q = max(f.max_qty, f.market_max_qty) or Decimal(10_000_000)
        specials = [lo_q, f.step_size, f.market_min_qty, f.max_qty, f.market_max_qty, Decimal(0), -lo_q]
        self.mark = spread(lo_p, hi_p, 10)
        self.price = spread(lo_p, hi_p)
        self.quantity = st.sampled_from(specials) | spread(lo_q, hi_q) | spread(lo_q, hi_q)
        self.notional = spread(Decimal("0.0001"), Decimal(100_000_000)) | st.sampled_from(
            [f.min_notional, Decimal(0)]
        )


@functools.cache
def ranges(f: SymbolFilters) -> Ranges:
    return Ranges(f)


MAX_NOTIONAL = st.none() | spread(Decimal(1), Decimal(10_000_000))


@st.composite
def cases(draw: st.DrawFn, f: SymbolFilters) -> Case:
    """One intent on ``f``. Rare variants are picked by a middle value of a range: hypothesis
    favours the ends of ranges, which would make "rare" common."""
    g = ranges(f)
    mark = draw(g.mark)
    t, side = draw(TYPES), draw(st.sampled_from(Side))
    quantity = notional = price = trigger = None
    close = t in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET) and draw(st.integers(0, 4)) == 2
    if not close:
        if draw(st.booleans()):
            quantity = draw(g.quantity)
        else:
            notional = draw(g.notional)
    if t in LIMIT_PRICED:
        kind = draw(st.integers(0, 2))
        price = draw(g.price) if kind == 2 else mark * draw(WIDE if kind else NARROW)
    if t in CONDITIONAL:
        kind = draw(st.integers(0, 9))
        trigger = mark if kind == 4 else draw(g.price) if kind == 5 else mark * draw(TRIGGER)
        if price is not None and draw(st.booleans()):
            price = trigger * draw(STOP_LIMIT)
    if draw(st.integers(0, 30)) == 15:  # now and then an ill-formed request
        quantity, notional, price, trigger = [
            (quantity, notional, None, trigger),
            (quantity, notional, mark, trigger),
            (quantity, notional, price, None),
            (quantity, notional, price, mark),
            (Decimal(1), Decimal(100), price, trigger),
            (None, None, price, trigger),
            (Decimal("NaN"), None, price, trigger),
        ][draw(st.integers(0, 6))]
    reduce_only = draw(st.integers(0, 4)) == 2
    request = SizingRequest(f.symbol, side, t, quantity, notional, price, trigger, reduce_only, close)
    last = mark * draw(LAST) if draw(st.booleans()) else None
    policy = draw(st.sampled_from(MinNotionalPolicy))
    return Case(request, mark, last, policy, draw(MAX_NOTIONAL))


# --- an independent model, in Fractions ------------------------------------------------------


def fr(d: Decimal) -> Fraction:
    return Fraction(d)


def places(d: Decimal) -> int:
    exp = d.normalize().as_tuple().exponent
    assert isinstance(exp, int)
    return max(0, -exp)


def price_grid(f: SymbolFilters) -> tuple[Fraction, Fraction]:
    if f.tick_size:
        return fr(f.min_price), fr(f.tick_size)
    assert f.price_precision is not None
    return Fraction(0), Fraction(1, 10**f.price_precision)


def lot_of(f: SymbolFilters, t: OrderType) -> tuple[str, Decimal, Decimal, Decimal]:
    if t in MARKET_EXEC:
        return "MARKET_LOT_SIZE", f.market_step_size, f.market_min_qty, f.market_max_qty
    return "LOT_SIZE", f.step_size, f.min_qty, f.max_qty


def qty_grid(f: SymbolFilters, t: OrderType) -> tuple[Fraction, Fraction]:
    _, step, lo, _ = lot_of(f, t)
    if step:
        return fr(lo), fr(step)
    assert f.quantity_precision is not None
    return Fraction(0), Fraction(1, 10**f.quantity_precision)


def down(x: Fraction, grid: tuple[Fraction, Fraction]) -> Fraction:
    origin, step = grid
    return origin + math.floor((x - origin) / step) * step


def up(x: Fraction, grid: tuple[Fraction, Fraction]) -> Fraction:
    origin, step = grid
    return origin + math.ceil((x - origin) / step) * step


@dataclass
class Model:
    """What the rules say about one well-formed case, every value exact."""

    price: Fraction | None
    trigger: Fraction | None
    at: Fraction
    raw_qty: Fraction | None
    qty: Fraction | None
    above: bool


def model(c: Case, f: SymbolFilters) -> Model:
    r = c.request
    buy = r.side is Side.BUY
    above = buy == (r.type in (OrderType.STOP, OrderType.STOP_MARKET))
    pg = price_grid(f)
    price = trigger = None
    if r.price is not None:
        price = (down if buy else up)(fr(r.price), pg) if r.price > 0 else fr(r.price)
    if r.trigger_price is not None:
        trigger = (down if above else up)(fr(r.trigger_price), pg) if r.trigger_price > 0 else fr(r.trigger_price)
    at = price if price is not None else fr(c.mark)
    raw_qty = qty = None
    if not r.close_position and (r.quantity is not None or at > 0):  # else PRICE_FILTER refused it
        raw_qty = fr(r.quantity) if r.quantity is not None else fr(r.notional or Decimal(0)) / at
        qty = down(raw_qty, qty_grid(f, r.type)) if raw_qty > 0 else raw_qty
    return Model(price, trigger, at, raw_qty, qty, above)


def triggers_now(order_type: str, side: str, trigger: Decimal, mark: Decimal) -> bool:
    """The simulator's own -2021 test."""
    algo = SimpleNamespace(order_type=order_type, side=side, trigger_price=trigger)
    return triggers(algo, mark, mark)  # type: ignore[arg-type]


# --- (a) accepted orders pass the simulator ----------------------------------------------------


def check_wire(o: SizedOrder, f: SymbolFilters) -> dict[str, str]:
    """(c): plain decimals, within the step / tick decimals, reading back as the same value."""
    wire = o.wire()
    _, step, _, _ = lot_of(f, o.type)
    limits = {
        "quantity": places(step) if step else f.quantity_precision,
        "price": places(f.tick_size) if f.tick_size else f.price_precision,
        "triggerPrice": places(f.tick_size) if f.tick_size else f.price_precision,
    }
    values = {"quantity": o.quantity, "price": o.price, "triggerPrice": o.trigger_price}
    for key, value in values.items():
        assert (key in wire) == (value is not None)
        if value is None:
            continue
        text = wire[key]
        assert "e" not in text.lower() and text == format(Decimal(text), "f"), text
        decimals = len(text.split(".")[1]) if "." in text else 0
        assert limits[key] is not None and decimals <= limits[key], (key, text, limits[key])
        assert Decimal(text) == value
    return wire


def sim_accepts(o: SizedOrder, c: Case, spec: SymbolSpec, f: SymbolFilters) -> None:
    wire = check_wire(o, f)
    side, mark = o.side.value, c.mark
    qty = sim_decimal(wire, "quantity") if "quantity" in wire else None
    price = sim_decimal(wire, "price") if "price" in wire else None
    if o.type in (OrderType.LIMIT, OrderType.MARKET):  # Exchange._check_filters, in its order
        assert qty is not None
        market = o.type is OrderType.MARKET
        simf.check_quantity(spec, qty, market=market)
        if market:
            simf.check_market_percent_price(spec, side, c.last if c.last is not None else mark, mark)
        else:
            assert price is not None
            simf.check_price(spec, price)
            simf.check_percent_price(spec, side, price, mark)
        simf.check_min_notional(spec, mark if market else price, qty, reduce_only=o.reduce_only)  # type: ignore[arg-type]
    else:  # Exchange.new_algo_order, in its order
        trigger = sim_decimal(wire, "triggerPrice")
        simf.check_price(spec, trigger)
        if qty is not None:
            simf.check_quantity(spec, qty, market=o.type in MARKET_EXEC)
        if price is not None:
            simf.check_price(spec, price)
        assert not triggers_now(o.type.value, side, trigger, mark)


def check_accepted(o: SizedOrder, c: Case, f: SymbolFilters) -> None:
    r, m = c.request, model(c, f)
    assert (o.symbol, o.side, o.type, o.reduce_only, o.close_position) == (
        r.symbol, r.side, r.type, r.reduce_only, r.close_position
    )  # fmt: skip
    assert (None if o.price is None else fr(o.price)) == m.price
    assert (None if o.trigger_price is None else fr(o.trigger_price)) == m.trigger
    if r.close_position:
        assert o.quantity is None and o.notional == 0
        return
    assert o.quantity is not None and m.qty is not None
    assert fr(o.notional) == fr(o.quantity) * m.at
    floor = fr(f.min_notional)
    if fr(o.quantity) != m.qty:  # only MIN_NOTIONAL's RAISE may change the rounded quantity
        assert c.policy is MinNotionalPolicy.RAISE and not r.reduce_only and m.qty * m.at < floor
        step = qty_grid(f, r.type)[1]
        assert fr(o.quantity) * m.at >= floor > (fr(o.quantity) - step) * m.at  # the smallest that meets it
        assert fr(o.quantity) == down(fr(o.quantity), qty_grid(f, r.type))
    elif not r.reduce_only:
        assert fr(o.notional) >= floor


# --- (b) refusals are true ---------------------------------------------------------------------


def ill_formed(c: Case, f: SymbolFilters, code: int | None) -> bool:
    r, t = c.request, c.request.type
    numbers = (r.quantity, r.notional, r.price, r.trigger_price)
    return {
        -1116: t not in SIZED,
        -1122: not f.trading,
        -1102: any(n is not None and not n.is_finite() for n in numbers)
        or (t in LIMIT_PRICED and r.price is None)
        or (t in CONDITIONAL and r.trigger_price is None)
        or (not r.close_position and r.quantity is None and r.notional is None),
        -1106: (t not in LIMIT_PRICED and r.price is not None)
        or (t not in CONDITIONAL and r.trigger_price is not None)
        or (r.close_position and r.reduce_only),
        -1130: r.close_position and t not in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET),
        -4137: r.close_position and (r.quantity is not None or r.notional is not None),
        None: (r.quantity is not None and r.notional is not None)
        or not (c.mark.is_finite() and c.mark > 0)
        or (c.last is not None and not (c.last.is_finite() and c.last > 0))
        or (c.max_notional is not None and not (c.max_notional.is_finite() and c.max_notional >= 0)),
    }.get(code, False)


def check_refusal(x: Refusal, c: Case, f: SymbolFilters) -> None:
    r = c.request
    if x.filter == "REQUEST" and x.code != -2021:
        assert ill_formed(c, f, x.code), x
        return
    assert ill_formed(c, f, None) is False and f.trading
    m = model(c, f)
    value = Fraction(Decimal(x.value))
    rounded = "rounded" in x.reason
    buy = r.side is Side.BUY
    if x.filter == "REQUEST":  # -2021: the rounded trigger sits where the order would trigger at once
        assert m.trigger is not None and value == m.trigger
        assert triggers_now(r.type.value, r.side.value, Decimal(x.value), c.mark)
        raw_ok = not triggers_now(r.type.value, r.side.value, r.trigger_price or Decimal(0), c.mark)
        assert rounded or not raw_ok
    elif x.filter in ("LOT_SIZE", "MARKET_LOT_SIZE"):
        name, _, lo, hi = lot_of(f, r.type)
        assert x.filter == name and m.qty is not None and m.raw_qty is not None and value == m.qty
        if x.code == -4003:
            assert m.qty <= 0 and (m.raw_qty <= 0 or rounded)
        elif x.code == -4004:
            assert lo and m.qty < fr(lo) and m.raw_qty < fr(lo)  # rounding down never crosses minQty
        else:
            assert x.code == -4005 and hi and m.raw_qty >= m.qty > fr(hi)
    elif x.filter == "PRICE_FILTER":
        which = "triggerPrice" if x.reason.startswith("triggerPrice") else "price"
        raw = r.trigger_price if which == "triggerPrice" else r.price
        assert raw is not None
        sized = m.trigger if which == "triggerPrice" else m.price
        assert value == sized
        for v, must_say in ((value, False), (fr(raw), True)):  # the rounded one violates; the raw one, or "rounded"
            if x.code == -4013:
                bad = v <= 0 or (bool(f.min_price) and v < fr(f.min_price))
            else:
                assert x.code == -4002
                bad = bool(f.max_price) and v > fr(f.max_price)
            assert bad or (must_say and rounded), (v, x)
    elif x.filter == "PERCENT_PRICE":
        up_m, down_m = fr(f.percent_up or Decimal(0)), fr(f.percent_down or Decimal(0))
        if x.code == -4131:
            best = fr(c.last if c.last is not None else c.mark)
            assert r.type is OrderType.MARKET and value == best
            assert (buy and up_m and best > fr(c.mark) * up_m) or (not buy and down_m and best < fr(c.mark) * down_m)
        else:
            assert m.price is not None and value == m.price
            ref = m.trigger if m.trigger is not None else fr(c.mark)
            if buy:
                assert x.code == -4016 and up_m and fr(r.price or 0) >= m.price > ref * up_m
            else:
                assert x.code == -4024 and down_m and fr(r.price or 0) <= m.price < ref * down_m
    else:
        assert x.filter == "MIN_NOTIONAL" and x.code == -4164
        assert not r.reduce_only and not r.close_position and m.qty is not None
        floor = fr(f.min_notional)
        assert value == m.qty * m.at < floor
        if c.policy is MinNotionalPolicy.RAISE:  # raising was not allowed
            need = max(up(floor / m.at, qty_grid(f, r.type)), m.qty)
            _, _, _, hi = lot_of(f, r.type)
            too_many = bool(hi) and need > fr(hi)
            too_big = c.max_notional is not None and need * m.at > fr(c.max_notional)
            assert too_many or too_big


def exact(x: Fraction) -> Decimal:
    """A Fraction with a power-of-ten-friendly denominator, as the exact Decimal."""
    with decimal.localcontext(decimal.Context(prec=100)):
        return Decimal(x.numerator) / Decimal(x.denominator)


def sim_code(c: Case, spec: SymbolSpec, m: Model) -> int | None:
    """The code the simulator answers for the rounded order (None: it accepts), checking in the
    order of ``Exchange._check_filters`` / ``Exchange.new_algo_order``."""
    r, side, mark = c.request, c.request.side.value, c.mark
    qty = None if m.qty is None else exact(m.qty)
    price = None if m.price is None else exact(m.price)
    try:
        if r.type in (OrderType.LIMIT, OrderType.MARKET):
            market = r.type is OrderType.MARKET
            assert qty is not None
            simf.check_quantity(spec, qty, market=market)
            if market:
                simf.check_market_percent_price(spec, side, c.last if c.last is not None else mark, mark)
            else:
                assert price is not None
                simf.check_price(spec, price)
                simf.check_percent_price(spec, side, price, mark)
            simf.check_min_notional(spec, price if price is not None else mark, qty, reduce_only=r.reduce_only)
        else:
            assert m.trigger is not None
            trigger = exact(m.trigger)
            simf.check_price(spec, trigger)
            if qty is not None:
                simf.check_quantity(spec, qty, market=r.type in MARKET_EXEC)
            if price is not None:
                simf.check_price(spec, price)
            if triggers_now(r.type.value, side, trigger, mark):
                return -2021
    except BinanceError as exc:
        return exc.code
    return None


def same_code_as_the_simulator(x: Refusal, c: Case, spec: SymbolSpec, f: SymbolFilters) -> None:
    """Where the simulator checks the refused filter, it gives the rounded order the same code.
    It does not check a stop-limit's band or a conditional order's MIN_NOTIONAL (ours), and
    cannot be sent a quantity derived from a price that is not positive."""
    if x.filter == "REQUEST" and x.code != -2021:
        return
    m = model(c, f)
    if m.qty is None and not c.request.close_position:
        return
    if c.request.type in CONDITIONAL and x.code in (-4016, -4024, -4164):
        return
    assert sim_code(c, spec, m) == x.code, (x, sim_code(c, spec, m))


# --- the properties ----------------------------------------------------------------------------


def decide(c: Case, f: SymbolFilters) -> SizedOrder | Refusal:
    return size(c.request, f, c.mark, last_price=c.last, min_notional=c.policy, max_notional=c.max_notional)


def prove(c: Case, f: SymbolFilters, spec: SymbolSpec) -> None:
    decision = decide(c, f)
    if isinstance(decision, Refusal):
        check_refusal(decision, c, f)
        same_code_as_the_simulator(decision, c, spec, f)
        return
    check_accepted(decision, c, f)
    try:
        sim_accepts(decision, c, spec, f)
    except BinanceError as exc:
        raise AssertionError(f"the simulator refuses {decision.wire()}: {exc.code} {exc.msg}") from exc


@pytest.mark.parametrize(("venue_name", "symbol"), CASES)
def test_every_decision_holds_against_the_simulator(venue_name: str, symbol: str) -> None:
    """Hypothesis runs inside the parametrized test, not on it: its pytest plugin derives a new
    settings object from the previous one for every parametrized item, and with the CI profile
    (database=None, not cached) reading the chain of ~900 items overflows the stack."""
    filters, specs = venue(venue_name)

    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        f, spec = filters[symbol], specs[symbol]
        if not f.trading and data.draw(st.booleans(), label="size it as if it traded"):
            f = msgspec.structs.replace(f, status="TRADING")
        prove(data.draw(cases(f), label="case"), f, spec)

    check()


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_decisions_hold_on_symbols_drawn_at_random(data: st.DataObject) -> None:
    """The same property, with more examples spread over the symbols hypothesis picks."""
    venue_name, symbol = data.draw(st.sampled_from(CASES), label="symbol")
    filters, specs = venue(venue_name)
    f = msgspec.structs.replace(filters[symbol], status="TRADING")
    prove(data.draw(cases(f), label="case"), f, specs[symbol])


def test_every_trading_symbol_takes_a_plain_order_of_each_kind() -> None:
    """The accepting path, on every TRADING symbol: twice the minimum notional at a mark inside
    the price filter, LIMIT and MARKET, both sides, passes sizing and the simulator."""
    seen = 0
    for venue_name, symbol in CASES:
        filters, specs = venue(venue_name)
        f = filters[symbol]
        if not f.trading:
            continue
        mark = (f.min_price * 10).max(f.tick_size * 1000)
        for t in (OrderType.LIMIT, OrderType.MARKET):
            for side in Side:
                price = mark if t is OrderType.LIMIT else None
                notional = max(f.min_notional * 2, mark * max(f.min_qty, f.market_min_qty) * 2)
                c = Case(SizingRequest(symbol, side, t, notional=notional, price=price), mark, None,
                         MinNotionalPolicy.REFUSE, None)  # fmt: skip
                decision = decide(c, f)
                assert isinstance(decision, SizedOrder), (venue_name, symbol, decision)
                check_accepted(decision, c, f)
                sim_accepts(decision, c, specs[symbol], f)
                seen += 1
    assert seen == 4 * (328 + 559)
