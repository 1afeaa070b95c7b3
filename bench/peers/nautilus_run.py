"""nautilus_trader's BacktestEngine on aegis' candles and rules: ``python nautilus_run.py prepare|run SPEC``.

Run by ``.venv-peers/bin/python`` (bench/bench_peers.py does). The low-level BacktestEngine API:
one Binance venue (netting, margin account in USDT, bar execution), a CryptoPerpetual per symbol
built from aegis' shipped exchangeInfo filters and fees, the candles as 1-minute LAST bars stamped
at their close, and aegis' example strategy (aegis/strategy/examples/rsi_reversion.py) on them:
RSI(14) and ATR(14) with Wilder smoothing (nautilus' own indicators; seeded from their first bars,
not as TA-Lib, which the 141-candle warm-up washes out), RSI below 30 buys and above 70 sells
short 200 USDT at the market as a bracket (STOP_MARKET 2 ATR and MARKET_IF_TOUCHED 3 ATR from the
signal candle's close, one cancels the other), RSI back across 50 cancels them and closes. Where
nautilus differs: a market order sent in ``on_bar`` fills at that bar's close, not on the next
candle's path; stops trigger on the bars' prices (aegis' on the mark price).
"""

from __future__ import annotations

import sys
import time
from decimal import Decimal
from typing import Any

import peercommon  # start-up is counted from its import

VENUE = "BINANCE"


def prepare(spec: dict[str, Any]) -> None:
    """Nothing to convert: the bars are built from the CSV files at start-up (aegis reads them too)."""


def instrument(symbol: str, info: dict[str, Any], spec: dict[str, Any]) -> Any:
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.enums import CurrencyType
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
    from nautilus_trader.model.instruments import CryptoPerpetual
    from nautilus_trader.model.objects import Currency, Money, Price, Quantity

    filters = {f["filterType"]: f for f in info["filters"]}
    tick = Decimal(filters["PRICE_FILTER"]["tickSize"]).normalize()
    step = Decimal(filters["LOT_SIZE"]["stepSize"]).normalize()
    base = Currency(info["baseAsset"], 8, 0, info["baseAsset"], CurrencyType.CRYPTO)
    return CryptoPerpetual(
        instrument_id=InstrumentId(Symbol(f"{symbol}-PERP"), Venue(VENUE)),
        raw_symbol=Symbol(symbol),
        base_currency=base, quote_currency=USDT, settlement_currency=USDT, is_inverse=False,
        price_precision=max(0, -tick.as_tuple().exponent), price_increment=Price.from_str(format(tick, "f")),
        size_precision=max(0, -step.as_tuple().exponent), size_increment=Quantity.from_str(format(step, "f")),
        max_quantity=None, min_quantity=Quantity.from_str(format(step, "f")), max_notional=None,
        min_notional=Money(5, USDT), max_price=None, min_price=None,
        margin_init=Decimal("0.05"), margin_maint=Decimal("0.025"),
        maker_fee=Decimal(str(spec["maker_fee"])), taker_fee=Decimal(str(spec["taker_fee"])),
        ts_event=0, ts_init=0,
    )  # fmt: skip


def bars(spec: dict[str, Any], symbol: str, inst: Any) -> list[Any]:
    """The candles as nautilus bars, each stamped at its close (a strategy sees it once it closed)."""
    import pandas as pd
    from nautilus_trader.model.data import BarType
    from nautilus_trader.persistence.wranglers import BarDataWrangler

    rows = peercommon.candles(spec, symbol)
    frame = pd.DataFrame(rows, columns=["ms", "open", "high", "low", "close", "volume"])
    frame.index = pd.to_datetime(frame.pop("ms") + peercommon.MINUTE_MS, unit="ms", utc=True)
    frame.index.name = "timestamp"
    frame = frame.astype("float64")
    bar_type = BarType.from_str(f"{inst.id}-1-MINUTE-LAST-EXTERNAL")
    return list(BarDataWrangler(bar_type, inst).process(frame))


def strategy_class() -> Any:
    from nautilus_trader.indicators import AverageTrueRange, RelativeStrengthIndex
    from nautilus_trader.indicators.averages import MovingAverageType
    from nautilus_trader.model.enums import OrderSide, OrderType
    from nautilus_trader.trading.strategy import Strategy

    class RsiReversion(Strategy):  # type: ignore[misc]
        def setup(self, params: dict[str, Any], bar_types: list[Any], from_ns: int) -> None:
            self.p, self.bar_types, self.from_ns = params, bar_types, from_ns
            self.ind: dict[Any, tuple[Any, Any]] = {}
            self.trips = self.fills = 0

        def on_start(self) -> None:
            for bt in self.bar_types:
                self.ind[bt.instrument_id] = (
                    RelativeStrengthIndex(int(self.p["rsi_period"]), MovingAverageType.WILDER),
                    AverageTrueRange(int(self.p["atr_period"]), MovingAverageType.WILDER),
                )
                self.subscribe_bars(bt)

        def on_position_closed(self, event: Any) -> None:
            self.trips += 1

        def on_order_filled(self, event: Any) -> None:
            self.fills += 1

        def on_bar(self, bar: Any) -> None:
            iid = bar.bar_type.instrument_id
            rsi_i, atr_i = self.ind[iid]
            rsi_i.handle_bar(bar)
            atr_i.handle_bar(bar)
            if not (rsi_i.initialized and atr_i.initialized) or bar.ts_event <= self.from_ns:
                return
            rsi, atr, p = rsi_i.value * 100.0, atr_i.value, self.p
            if atr <= 0:
                return
            if self.portfolio.is_net_long(iid):
                if rsi > p["exit_rsi"]:
                    self.cancel_all_orders(iid)
                    self.close_all_positions(iid)
                return
            if self.portfolio.is_net_short(iid):
                if rsi < p["exit_rsi"]:
                    self.cancel_all_orders(iid)
                    self.close_all_positions(iid)
                return
            if self.cache.orders_open_count(instrument_id=iid) > 0:
                return
            side = OrderSide.BUY if rsi < p["oversold"] else OrderSide.SELL if rsi > p["overbought"] else None
            if side is None:
                return
            inst = self.cache.instrument(iid)
            close, sign = bar.close.as_double(), (1.0 if side == OrderSide.BUY else -1.0)
            order = self.order_factory.bracket(
                iid, side, inst.make_qty(float(p["notional"]) / close),
                sl_trigger_price=inst.make_price(close - sign * p["stop_atr"] * atr),
                tp_order_type=OrderType.MARKET_IF_TOUCHED,
                tp_trigger_price=inst.make_price(close + sign * p["take_profit_atr"] * atr),
            )  # fmt: skip
            self.submit_order_list(order)

    return RsiReversion


def run(spec: dict[str, Any]) -> None:
    import json
    from pathlib import Path

    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.enums import AccountType, OmsType
    from nautilus_trader.model.identifiers import Venue
    from nautilus_trader.model.objects import Money

    infos = {
        s["symbol"]: s for s in json.loads(Path(spec["exchange_info"]).read_text(encoding="utf-8"))["symbols"]
    }
    engine = BacktestEngine(
        BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR", bypass_logging=True))
    )
    engine.add_venue(Venue(VENUE), oms_type=OmsType.NETTING, account_type=AccountType.MARGIN,
                     base_currency=USDT, starting_balances=[Money(1_000_000, USDT)], default_leverage=Decimal(5))  # fmt: skip
    bar_types = []
    for symbol in spec["symbols"]:
        inst = instrument(symbol, infos[symbol], spec)
        engine.add_instrument(inst)
        data = bars(spec, symbol, inst)
        engine.add_data(data)
        bar_types.append(data[0].bar_type)
    strategy = strategy_class()()
    strategy.setup(spec["params"], bar_types, int(spec["from_ms"]) * 1_000_000)
    engine.add_strategy(strategy)
    first = time.perf_counter()
    engine.run()
    engine.trader.generate_order_fills_report()
    engine.trader.generate_positions_report()
    report = time.perf_counter()
    peercommon.emit(first, report, peercommon.in_range(spec), strategy.trips, strategy.fills)


if __name__ == "__main__":
    command, spec_path = sys.argv[1], sys.argv[2]
    {"prepare": prepare, "run": run}[command](peercommon.load_spec(spec_path))
