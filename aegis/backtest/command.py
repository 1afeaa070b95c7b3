"""``aegis backtest``: its flags, and turning them into a checked plan before anything starts.

Every refusal is a ``ConfigError`` naming the flag (the CLI prints one line and exits 2).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aegis.config import ConfigError, Settings, load_settings

__all__ = ["add_parser", "command"]

EPILOG = """\
examples:
  aegis backtest                                   BTCUSDT over the packaged month, RSI example strategy
  aegis backtest --symbols BTCUSDT ETHUSDT --from 2025-05-10 --to 2025-05-17
  aegis backtest --data ./klines --symbols SOLUSDT  Binance dumps: SOLUSDT-1m-2024-01.zip ...
  aegis backtest --strategy mypkg.mod:MyStrategy --params '{"notional": "100"}'
  aegis backtest --fill-model impact:0.1 --faults all@4 --seed 7

Candles come from the packaged files and --data (data.binance.vision kline CSVs or zips). The
engine warms up on the strategy's window of candles before --from, so those must be in the files;
--to must leave the next candle in them (orders placed on the last close fill on its path).
Same inputs and seed: byte-identical files in --report-dir (summary.json, fills.csv, trades.csv,
report.html). Exit codes: 0 done, 1 failed, 2 bad usage or configuration, 130 interrupted.
"""


def add_parser(commands: Any, formatter: Callable[[str], argparse.HelpFormatter]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "backtest", help="replay candles through the whole engine and the simulator",
        description="Replay real candles through the simulator and the unchanged live engine, in one\n"
        "process on one virtual clock, and report what the strategy did.",
        epilog=EPILOG, formatter_class=formatter,
    )  # fmt: skip
    add = parser.add_argument
    add("--symbols", nargs="+", metavar="S", help="symbols to replay (default BTCUSDT)")
    add("--from", dest="start", metavar="WHEN", help="first candle: 2025-05-10, 2025-05-10T08:00 (UTC) or epoch ms")
    add("--to", dest="end", metavar="WHEN", help="end of the replay (exclusive); default: the end of the files")
    add("--data", type=Path, metavar="DIR", help="directory of Binance 1m kline CSVs/zips (adds to the packaged ones)")
    add("--strategy", metavar="MODULE:CLASS", help="strategy class (default: strategy.path of the configuration)")
    add("--params", metavar="JSON", help="strategy parameters as a JSON object (default: strategy.params)")
    add("--seed", type=int, default=1, metavar="N", help="seed of the fault schedule and of retry jitter (default 1)")
    add("--fill-model", metavar="MODEL", help="taker fill prices: none, ticks:N, bps:N or impact:K (default sim.fill_model)")
    add("--faults", metavar="KINDS[@RATE]", help="inject faults: all, or kinds such as drop_user,rest_5xx; @RATE per exchange hour (default 2)")
    add("--report-dir", type=Path, default=Path("reports/backtest"), metavar="DIR", help="where the files go (default reports/backtest)")
    add("--config", type=Path, metavar="PATH", help="settings file (default: $AEGIS_CONFIG, else ./settings.toml)")
    return parser


def command(args: argparse.Namespace, start_logging: Callable[[Settings], None]) -> int:
    from aegis.backtest.runner import backtest_settings, journal_path, run

    base = load_settings(args.config, _overrides(args))
    strategy = _strategy(base, from_flags=args.strategy is not None or args.params is not None)
    plan = _plan(args, base, strategy.window)
    settings = backtest_settings(base, plan, journal_path())
    start_logging(settings)
    return run(plan, settings, strategy, args.report_dir)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {"profile": "sim", "symbols": list(args.symbols or ["BTCUSDT"])}
    strategy: dict[str, Any] = {"enabled": True}
    if args.strategy is not None:
        strategy["path"] = args.strategy
    if args.params is not None:
        try:
            params = json.loads(args.params)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--params: not JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(params, dict):
            raise ConfigError(f"--params: expected a JSON object such as '{{\"notional\": \"100\"}}', got {args.params!r}")
        strategy["params"] = params
    overrides["strategy"] = strategy
    if args.fill_model is not None:
        from aegis.sim.fillmodel import parse

        try:
            parse(args.fill_model)
        except ValueError as exc:
            raise ConfigError(f"--fill-model: {exc}") from None
        overrides["sim"] = {"fill_model": args.fill_model}
    return overrides


def _strategy(settings: Settings, *, from_flags: bool) -> Any:
    from aegis.strategy.loader import StrategyError, load_strategy

    try:
        return load_strategy(settings.strategy.path, settings.strategy.params)
    except StrategyError as exc:
        text = str(exc)
        if from_flags:
            text = text.replace("strategy.path:", "--strategy:").replace("strategy.params:", "--params:")
        raise ConfigError(text) from None


def _plan(args: argparse.Namespace, settings: Settings, window: int) -> Any:
    from aegis.backtest.data import candle_spans
    from aegis.backtest.plan import BacktestPlan, parse_faults, parse_time, plan_span

    if args.seed < 0:
        raise ConfigError(f"--seed: must be >= 0, got {args.seed}")
    symbols = tuple(settings.symbols)
    start = None if args.start is None else parse_time("--from", args.start)
    end = None if args.end is None else parse_time("--to", args.end)
    spans = candle_spans(symbols, args.data)
    start, end = plan_span(spans, start, end, window)
    faults = None if args.faults is None else parse_faults(args.faults)
    return BacktestPlan(
        symbols, start, end, window, data=args.data, seed=args.seed, fill_model=settings.sim.fill_model, faults=faults
    )
