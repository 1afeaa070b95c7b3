"""freqtrade's backtesting on aegis' candles and rules: ``python freqtrade_run.py prepare|run SPEC``.

Run by ``.venv-peers/bin/python`` (bench/bench_peers.py does). Offline: freqtrade loads its
markets through ccxt from Binance at start-up; here ccxt's ``load_markets`` is answered with the
markets parsed (by ccxt's own binance parser) from aegis' shipped exchangeInfo.json, the leverage
tiers come from freqtrade's bundled file (``dry_run``), and the futures data freqtrade insists on
(1 h funding rates and mark candles) are written from the same candles with a funding rate of 0.
Nothing else is patched: the backtest is freqtrade's own ``freqtrade backtesting`` command.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import peercommon  # start-up is counted from its import

STRATEGY_DIR = Path(__file__).parent / "freqtrade_strategy"


def pair_of(symbol: str) -> str:
    return f"{symbol.removesuffix('USDT')}/USDT:USDT"


def prepare(spec: dict[str, Any]) -> None:
    """Candles as freqtrade's feather files (futures 1m, 1 h mark, 1 h funding rate 0), and the config."""
    import pandas as pd

    work = Path(spec["workdir"])
    data = work / "data" / "futures"
    data.mkdir(parents=True, exist_ok=True)
    for symbol in spec["symbols"]:
        rows = peercommon.candles(spec, symbol)
        frame = pd.DataFrame(rows, columns=["ms", "open", "high", "low", "close", "volume"])
        frame["date"] = pd.to_datetime(frame.pop("ms"), unit="ms", utc=True)
        frame = frame[["date", "open", "high", "low", "close", "volume"]].astype(
            {c: "float64" for c in ("open", "high", "low", "close", "volume")}
        )
        stem = pair_of(symbol).replace("/", "_").replace(":", "_")
        frame.to_feather(data / f"{stem}-1m-futures.feather")
        hourly = frame.set_index("date").resample("1h").agg(
            {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
        ).dropna().reset_index()  # fmt: skip
        hourly.to_feather(data / f"{stem}-1h-mark.feather")
        funding = hourly.copy()
        funding[["open", "high", "low", "close", "volume"]] = 0.0
        funding.to_feather(data / f"{stem}-1h-funding_rate.feather")
    config = {
        "trading_mode": "futures", "margin_mode": "isolated", "dry_run": True, "dry_run_wallet": 1_000_000,
        "stake_currency": "USDT", "stake_amount": spec["params"]["notional"], "max_open_trades": len(spec["symbols"]),
        "timeframe": "1m", "fee": spec["taker_fee"], "futures_funding_rate": 0,
        "dataformat_ohlcv": "feather", "datadir": str(work / "data"), "user_data_dir": str(work),
        "exchange": {"name": "binance", "key": "", "secret": "", "pair_whitelist": [pair_of(s) for s in spec["symbols"]],
                     "ccxt_config": {}, "ccxt_async_config": {}, "skip_pair_validation": True},
        "pairlists": [{"method": "StaticPairList"}],
        "entry_pricing": {"price_side": "same", "use_order_book": True, "order_book_top": 1},
        "exit_pricing": {"price_side": "same", "use_order_book": True, "order_book_top": 1},
        "internals": {"process_throttle_secs": 5}, "bot_name": "bench", "initial_state": "running",
    }  # fmt: skip
    (work / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")


def offline_markets(exchange_info: Path) -> None:
    """Answer ccxt's market load from the shipped exchangeInfo (parsed by ccxt's binance code)."""
    import ccxt.async_support as ccxt_async

    symbols = json.loads(exchange_info.read_text(encoding="utf-8"))["symbols"]

    async def load_markets(self: Any, reload: bool = False, params: Any = None) -> Any:
        if not self.markets:
            self.set_markets([self.parse_market(s) for s in symbols if s.get("contractType") == "PERPETUAL"])
        return self.markets

    ccxt_async.binance.load_markets = load_markets


def run(spec: dict[str, Any]) -> None:
    from freqtrade.main import main
    from freqtrade.optimize.backtesting import Backtesting

    offline_markets(Path(spec["exchange_info"]))
    marks: dict[str, Any] = {}
    load, start = Backtesting.load_bt_data, Backtesting.start

    def on_load(self: Backtesting) -> Any:
        result = load(self)
        marks["first"] = time.perf_counter()  # the candles are read: the replay starts
        return result

    def on_start(self: Backtesting) -> None:
        start(self)
        marks["report"] = time.perf_counter()  # the report is printed
        marks["results"] = self.results

    Backtesting.load_bt_data = on_load
    Backtesting.start = on_start
    work = Path(spec["workdir"])
    tr = f"{int(spec['from_ms']) // 1000}-{int(spec['to_ms']) // 1000}"
    argv = ["backtesting", "--config", str(work / "config.json"), "--strategy", "RsiReversionFt",
            "--strategy-path", str(STRATEGY_DIR), "--timerange", tr, "--export", "none",
            "--cache", "none", "--userdir", str(work), "--datadir", str(work / "data")]  # fmt: skip
    try:
        main(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    stats = marks["results"]["strategy"]["RsiReversionFt"]
    trades = int(stats["total_trades"])
    peercommon.emit(marks["first"], marks["report"], peercommon.in_range(spec), trades, 2 * trades)


if __name__ == "__main__":
    command, spec_path = sys.argv[1], sys.argv[2]
    {"prepare": prepare, "run": run}[command](peercommon.load_spec(spec_path))
