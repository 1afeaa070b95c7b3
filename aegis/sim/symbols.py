"""The exchange's instruments, parsed once from a real exchangeInfo payload.

Filters are turned into Decimals at start-up so that the order path never re-parses JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from aegis.sim.config import SimConfig

ZERO = Decimal(0)

# Leverage brackets: (notional floor, notional cap, max leverage, maintenance margin ratio).
# Shapes follow Binance's published tables; BTC/ETH get the 125x table, the rest a 50x one.
_MAJOR_BRACKETS: tuple[tuple[int, int, int, str], ...] = (
    (0, 50_000, 125, "0.004"),
    (50_000, 600_000, 100, "0.005"),
    (600_000, 3_000_000, 75, "0.0065"),
    (3_000_000, 12_000_000, 50, "0.01"),
    (12_000_000, 70_000_000, 25, "0.02"),
    (70_000_000, 100_000_000, 20, "0.025"),
    (100_000_000, 230_000_000, 10, "0.05"),
    (230_000_000, 480_000_000, 5, "0.1"),
    (480_000_000, 600_000_000, 4, "0.125"),
    (600_000_000, 800_000_000, 3, "0.15"),
    (800_000_000, 1_200_000_000, 2, "0.25"),
    (1_200_000_000, 1_800_000_000, 1, "0.5"),
)
_OTHER_BRACKETS: tuple[tuple[int, int, int, str], ...] = (
    (0, 5_000, 50, "0.01"),
    (5_000, 50_000, 25, "0.02"),
    (50_000, 200_000, 20, "0.025"),
    (200_000, 1_000_000, 10, "0.05"),
    (1_000_000, 2_000_000, 5, "0.1"),
    (2_000_000, 5_000_000, 4, "0.125"),
    (5_000_000, 10_000_000, 3, "0.15"),
    (10_000_000, 20_000_000, 2, "0.25"),
    (20_000_000, 50_000_000, 1, "0.5"),
)


@dataclass(frozen=True, slots=True)
class Bracket:
    bracket: int
    floor: Decimal
    cap: Decimal
    leverage: int
    mmr: Decimal
    cum: Decimal


def _brackets(symbol: str) -> tuple[Bracket, ...]:
    table = _MAJOR_BRACKETS if symbol in ("BTCUSDT", "ETHUSDT", "BTCUSDC", "ETHUSDC") else _OTHER_BRACKETS
    out: list[Bracket] = []
    cum = ZERO
    prev_mmr = ZERO
    for i, (floor, cap, lev, mmr) in enumerate(table, start=1):
        m = Decimal(mmr)
        cum += Decimal(floor) * (m - prev_mmr)
        out.append(Bracket(i, Decimal(floor), Decimal(cap), lev, m, cum))
        prev_mmr = m
    return tuple(out)


def decimals_of(d: Decimal) -> int:
    """Fractional digits of ``d`` ignoring trailing zeros ("0.010" -> 2)."""
    exp = d.normalize().as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One instrument with its filters as Decimals."""

    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    margin_asset: str
    price_precision: int
    quantity_precision: int
    onboard_ms: int
    maint_margin_pct: Decimal
    liquidation_fee: Decimal
    min_price: Decimal
    max_price: Decimal
    tick: Decimal
    min_qty: Decimal
    max_qty: Decimal
    step: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    market_step: Decimal
    min_notional: Decimal
    multiplier_up: Decimal
    multiplier_down: Decimal
    max_orders: int
    max_algo_orders: int
    brackets: tuple[Bracket, ...]

    @property
    def price_decimals(self) -> int:
        """Decimals a price may carry before Binance answers -1111."""
        return max(self.price_precision, decimals_of(self.tick))

    @property
    def qty_decimals(self) -> int:
        return max(self.quantity_precision, decimals_of(self.step))

    @property
    def max_leverage(self) -> int:
        return self.brackets[0].leverage

    def bracket_for(self, notional: Decimal) -> Bracket:
        for b in self.brackets:
            if notional < b.cap:
                return b
        return self.brackets[-1]


def _filters(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["filterType"]: f for f in raw.get("filters", [])}


def _dec(f: dict[str, Any] | None, key: str, default: str = "0") -> Decimal:
    if not f or key not in f:
        return Decimal(default)
    return Decimal(str(f[key]))


def parse_symbol(raw: dict[str, Any]) -> SymbolSpec:
    f = _filters(raw)
    pf, lot, mlot = f.get("PRICE_FILTER"), f.get("LOT_SIZE"), f.get("MARKET_LOT_SIZE") or f.get("LOT_SIZE")
    pp = f.get("PERCENT_PRICE")
    return SymbolSpec(
        symbol=raw["symbol"],
        status=raw.get("status", "TRADING"),
        base_asset=raw.get("baseAsset", ""),
        quote_asset=raw.get("quoteAsset", "USDT"),
        margin_asset=raw.get("marginAsset", "USDT"),
        price_precision=int(raw.get("pricePrecision", 8)),
        quantity_precision=int(raw.get("quantityPrecision", 8)),
        onboard_ms=int(raw.get("onboardDate", 0)),
        maint_margin_pct=Decimal(str(raw.get("maintMarginPercent", "2.5"))),
        liquidation_fee=Decimal(str(raw.get("liquidationFee", "0.0125"))),
        min_price=_dec(pf, "minPrice"),
        max_price=_dec(pf, "maxPrice"),
        tick=_dec(pf, "tickSize"),
        min_qty=_dec(lot, "minQty"),
        max_qty=_dec(lot, "maxQty"),
        step=_dec(lot, "stepSize"),
        market_min_qty=_dec(mlot, "minQty"),
        market_max_qty=_dec(mlot, "maxQty"),
        market_step=_dec(mlot, "stepSize"),
        min_notional=_dec(f.get("MIN_NOTIONAL"), "notional"),
        multiplier_up=_dec(pp, "multiplierUp", "0"),
        multiplier_down=_dec(pp, "multiplierDown", "0"),
        max_orders=int((f.get("MAX_NUM_ORDERS") or {}).get("limit", 200)),
        max_algo_orders=int((f.get("MAX_NUM_ALGO_ORDERS") or {}).get("limit", 10)),
        brackets=_brackets(raw["symbol"]),
    )


class ExchangeInfo:
    """The instrument table plus the pre-serialised exchangeInfo body (only serverTime varies)."""

    def __init__(self, raw: dict[str, Any], config: SimConfig) -> None:
        self.raw = raw
        self.symbols: dict[str, SymbolSpec] = {s["symbol"]: parse_symbol(s) for s in raw["symbols"]}
        self.rate_limits = self._rate_limits(raw.get("rateLimits", []), config)
        body = dict(raw)
        body.pop("serverTime", None)
        body["rateLimits"] = self.rate_limits
        rest = orjson.dumps({k: v for k, v in body.items() if k != "timezone"})
        self._prefix = b'{"timezone":' + orjson.dumps(raw.get("timezone", "UTC")) + b',"serverTime":'
        self._suffix = b"," + rest[1:]

    @classmethod
    def load(cls, config: SimConfig) -> ExchangeInfo:
        return cls(_load_json(config.exchange_info_path), config)

    @staticmethod
    def _rate_limits(limits: list[dict[str, Any]], config: SimConfig) -> list[dict[str, Any]]:
        out = [dict(x) for x in limits] or [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ]
        for x in out:
            if x["rateLimitType"] == "REQUEST_WEIGHT" and config.weight_limit_1m is not None:
                x["limit"] = config.weight_limit_1m
            elif (
                x["rateLimitType"] == "ORDERS"
                and x["interval"] == "SECOND"
                and config.orders_limit_10s is not None
            ):
                x["limit"] = config.orders_limit_10s
            elif (
                x["rateLimitType"] == "ORDERS"
                and x["interval"] == "MINUTE"
                and config.orders_limit_1m is not None
            ):
                x["limit"] = config.orders_limit_1m
        return out

    def limit(self, kind: str, interval: str) -> int:
        for x in self.rate_limits:
            if x["rateLimitType"] == kind and x["interval"] == interval:
                return int(x["limit"])
        raise KeyError((kind, interval))

    def body(self, server_time_ms: int) -> bytes:
        return self._prefix + str(server_time_ms).encode() + self._suffix


_JSON_CACHE: dict[Path, dict[str, Any]] = {}


def _load_json(path: Path) -> dict[str, Any]:
    """Parse once per process: tests start many simulators."""
    if path not in _JSON_CACHE:
        _JSON_CACHE[path] = json.loads(path.read_text())
    return _JSON_CACHE[path]
