"""Fill models: the price a taker (a MARKET order, a triggered stop, a marketable LIMIT) gets.

The replayed candles say where the market traded, not what an order of a given size would have
paid, so the simulator prices taker fills with a named model (``SimConfig.fill_model``):
- ``none``: the current price of the path (the default: no slippage);
- ``ticks:N``: N ticks worse than the current price;
- ``bps:N``: N basis points worse, back on the tick grid;
- ``impact:K``: worse by K times the order's share of the current candle's volume (relative:
  a buy of 1% of the candle's volume with K=0.1 pays 0.1% more), the linear impact of
  nautilus_trader's volume-sensitive and size-aware fill models and zipline's volume-share
  slippage, on 1-minute bars.
``str(model)`` names the model for a report. A LIMIT order never fills worse than its price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Protocol

from aegis.sim.symbols import SymbolSpec

_BPS = Decimal("0.0001")


class FillModel(Protocol):
    def price(self, spec: SymbolSpec, side: str, price: Decimal, qty: Decimal, bar_volume: Decimal) -> Decimal:
        """The fill price of a taker order of ``qty`` at current price ``price``."""
        ...


def _tick(spec: SymbolSpec) -> Decimal:
    return spec.tick or Decimal(1).scaleb(-spec.price_precision)


def _worse(spec: SymbolSpec, side: str, raw: Decimal) -> Decimal:
    """``raw`` back on the tick grid, rounded against the taker."""
    tick = _tick(spec)
    rounding = ROUND_CEILING if side == "BUY" else ROUND_FLOOR
    return ((raw / tick).to_integral_value(rounding=rounding) * tick).quantize(tick)


@dataclass(frozen=True)
class NoSlippage:
    def price(self, spec: SymbolSpec, side: str, price: Decimal, qty: Decimal, bar_volume: Decimal) -> Decimal:
        return price

    def __str__(self) -> str:
        return "none (fills at the path price)"


@dataclass(frozen=True)
class TickSlippage:
    ticks: int

    def price(self, spec: SymbolSpec, side: str, price: Decimal, qty: Decimal, bar_volume: Decimal) -> Decimal:
        shift = _tick(spec) * self.ticks
        return price + shift if side == "BUY" else max(price - shift, _tick(spec))

    def __str__(self) -> str:
        return f"ticks:{self.ticks} ({self.ticks} tick(s) worse than the path price)"


@dataclass(frozen=True)
class BpsSlippage:
    bps: Decimal

    def price(self, spec: SymbolSpec, side: str, price: Decimal, qty: Decimal, bar_volume: Decimal) -> Decimal:
        if not self.bps:
            return price
        factor = self.bps * _BPS
        return _worse(spec, side, price * (1 + factor) if side == "BUY" else price * (1 - factor))

    def __str__(self) -> str:
        return f"bps:{self.bps} ({self.bps} basis points worse than the path price)"


@dataclass(frozen=True)
class VolumeImpact:
    coefficient: Decimal

    def price(self, spec: SymbolSpec, side: str, price: Decimal, qty: Decimal, bar_volume: Decimal) -> Decimal:
        share = qty / bar_volume if bar_volume > 0 else Decimal(1)
        impact = self.coefficient * share
        return _worse(spec, side, price * (1 + impact) if side == "BUY" else price * max(1 - impact, Decimal(0)))

    def __str__(self) -> str:
        return f"impact:{self.coefficient} (worse by {self.coefficient} x the order's share of the 1m candle's volume)"


def parse(spec: str) -> FillModel:
    """``none``, ``ticks:N``, ``bps:N`` or ``impact:K``; ValueError for anything else."""
    kind, _, arg = spec.strip().partition(":")
    try:
        if kind == "none" and not arg:
            return NoSlippage()
        if kind == "ticks" and arg.isascii() and arg.isdigit():
            return TickSlippage(int(arg))
        if kind in ("bps", "impact") and arg:
            value = Decimal(arg)
            if value.is_finite() and value >= 0:
                return BpsSlippage(value) if kind == "bps" else VolumeImpact(value)
    except ArithmeticError:
        pass
    raise ValueError(f"fill model must be none, ticks:N, bps:N or impact:K (got {spec!r})")
