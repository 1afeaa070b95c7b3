"""The ``aegis`` command: run the engine, backtest it, run the simulator, show the configuration.

Exit codes are part of the interface, because supervisord and scripts read them:
0 success, 1 runtime failure (or a command not built yet), 2 bad usage or bad configuration
(one line on stderr naming the field, never a traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from aegis import __version__
from aegis.config import ConfigError, Settings, load_settings, masked_dump
from aegis.exitcodes import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (supervisord logs and scripts read stderr)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _fail(message: str, code: int) -> int:
    print(f"aegis: {message}", file=sys.stderr)
    return code


# --------------------------------------------------------------------------- parser

_RUN_EPILOG = """\
examples:
  aegis run                          the embedded simulator (default profile: sim)
  aegis run --sim --sim-speed 60     one simulated hour per wall minute
  aegis run --sim-url http://127.0.0.1:8900   against a running `aegis sim --port 8900`
  aegis run --testnet                Binance futures testnet (needs AEGIS_API_KEY/AEGIS_API_SECRET)
  aegis run --live                   mainnet; refused unless settings.toml says allow_live = true

SIGTERM or SIGINT stops the engine gracefully within engine.shutdown_timeout_s.
"""

_SIM_EPILOG = """\
examples:
  aegis sim --port 8900 --speed 60
  aegis sim --account mykey:mysecret:50000 --data ./candles

Point any Binance USD-M client at http://127.0.0.1:PORT (REST) and ws://127.0.0.1:PORT
(streams). The demo account (aegis-demo-key / aegis-demo-secret) always exists.
"""

_CONFIG_EPILOG = """\
examples:
  aegis config                       as TOML: a valid settings.toml of the effective values
  aegis config --format json --testnet
  AEGIS_OPS__PORT=0 aegis config     see an environment override take effect

Secrets are never shown: a set secret appears as ********** (JSON) or as a comment (TOML).
"""

_MAIN_EPILOG = """\
configuration (lowest precedence first): built-in defaults < settings.toml (--config or
AEGIS_CONFIG, else ./settings.toml if present) < AEGIS_* environment variables (nested with
__, e.g. AEGIS_OPS__PORT=0) < command-line flags. API keys come only from AEGIS_API_KEY /
AEGIS_API_SECRET or the files named by AEGIS_API_KEY_FILE / AEGIS_API_SECRET_FILE.

exit codes: 0 ok, 1 failure, 2 bad usage or configuration, 130 interrupted.
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    """Keep the hand-wrapped descriptions and examples; room for the subcommand names."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="settings file (default: $AEGIS_CONFIG, else ./settings.toml if it exists)",
    )


def _profile_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--sim", dest="profile", action="store_const", const="sim",
                       help="the local simulator (the default profile)")
    group.add_argument("--testnet", dest="profile", action="store_const", const="testnet",
                       help="Binance USD-M futures testnet")
    group.add_argument("--live", dest="profile", action="store_const", const="live",
                       help="Binance mainnet, real money: also needs allow_live = true in the config")
    # Values are left as strings: Settings validates them, so a bad one is reported like any other.
    parser.add_argument("--symbols", nargs="+", metavar="S", help="symbols to trade, e.g. BTCUSDT ETHUSDT")
    parser.add_argument("--ops-port", metavar="N", help="ops HTTP port on 127.0.0.1 (0 = pick a free one)")
    parser.add_argument("--sim-url", metavar="URL",
                        help="use a running `aegis sim` at http://127.0.0.1:PORT instead of the embedded one")
    parser.add_argument("--sim-speed", metavar="X", help="simulated time runs X times faster than the wall")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aegis",
        description="aegis: an asyncio trading engine for Binance USD-M perpetual futures,\n"
        "with a loopback Binance simulator.",
        epilog=_MAIN_EPILOG,
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"aegis {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run the trading engine", description="Run the trading engine until SIGTERM/SIGINT.",
        epilog=_RUN_EPILOG, formatter_class=_formatter,
    )
    _profile_flags(run)
    _common(run)
    run.add_argument("--dry-run", action="store_true",
                     help="do everything but send orders: intents are sized, risk-checked, journaled as dry and logged")
    run.add_argument("--duration", type=float, default=0.0, metavar="SECONDS",
                     help="stop cleanly after SECONDS of wall time (demos, smoke tests); 0 = run until stopped")
    run.set_defaults(handler=cmd_run)

    reconcile = commands.add_parser(
        "reconcile", help="compare the account with the exchange once (cron, monitoring)",
        description="Fetch the exchange's positions, open orders and algo orders, compare them with\n"
        "the journal's view (or ask a running engine with the same journal for a pass), print\n"
        "the report and exit: 0 clean, 1 mismatches, 2 usage, configuration or connection error.",
        formatter_class=_formatter,
    )
    reconcile.add_argument("--once", action="store_true", required=True, help="run one reconciliation and exit")
    reconcile.add_argument("--json", action="store_true", help="print the report as JSON (for machines)")
    reconcile.add_argument("--pnl", action="store_true",
                           help="also compare the journal's realized PnL and fees with the exchange's income\n"
                           "history, trade by trade, since the journal's first fill (to the cent)")
    _profile_flags(reconcile)
    _common(reconcile)
    reconcile.set_defaults(handler=cmd_reconcile)

    sim = commands.add_parser(
        "sim", help="run the Binance simulator as a standalone server",
        description="Serve a Binance USD-M futures exchange (REST + WebSocket) on loopback.",
        epilog=_SIM_EPILOG, formatter_class=_formatter,
    )
    sim.add_argument("--host", metavar="HOST", help="loopback address to bind (default 127.0.0.1)")
    sim.add_argument("--port", metavar="P", help="port to listen on (default sim.port; 0 = pick a free one)")
    sim.add_argument("--speed", metavar="X", help="exchange time runs X times faster than the wall")
    sim.add_argument("--data", metavar="PATH", help="directory of Binance 1m candle CSVs to replay")
    sim.add_argument("--account", action="append", default=[], metavar="KEY:SECRET[:USDT_BALANCE]",
                     help="add an account (repeatable); the demo account always exists")
    _common(sim)
    sim.set_defaults(handler=cmd_sim)

    from aegis.backtest.command import add_parser as add_backtest

    add_backtest(commands, _formatter).set_defaults(handler=cmd_backtest)

    config = commands.add_parser(
        "config", help="print the effective configuration, secrets masked",
        description="Print the configuration aegis would run with, after settings.toml, the\n"
        "environment and the flags below.",
        epilog=_CONFIG_EPILOG, formatter_class=_formatter,
    )
    config.add_argument("--format", choices=("toml", "json"), default="toml", help="output format (default toml)")
    _profile_flags(config)
    _common(config)
    config.set_defaults(handler=cmd_config)
    return parser


# --------------------------------------------------------------------------- overrides


def engine_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The engine flags as the nested dict ``load_settings`` merges over file and environment."""
    overrides: dict[str, Any] = {}
    if args.profile is not None:
        overrides["profile"] = args.profile
    if args.symbols:
        overrides["symbols"] = list(args.symbols)
    if args.ops_port is not None:
        overrides["ops"] = {"port": args.ops_port}
    sim = {k: v for k, v in (("url", args.sim_url), ("speed", args.sim_speed)) if v is not None}
    if sim:
        overrides["sim"] = sim
    return overrides


def sim_overrides(args: argparse.Namespace) -> dict[str, Any]:
    sim = {k: getattr(args, k) for k in ("host", "port", "speed", "data") if getattr(args, k) is not None}
    return {"sim": sim} if sim else {}


def _start_logging(settings: Settings) -> None:
    """Logging first, with secrets registered, so not even a start-up error can print a key."""
    from aegis.ops.logs import LogFileError, setup_logging
    from aegis.redact import register_secret

    for secret in (settings.api_key, settings.api_secret):
        register_secret(secret)
    try:
        setup_logging(settings.logging)
    except LogFileError as exc:
        raise ConfigError(str(exc)) from None


# --------------------------------------------------------------------------- commands


def _engine_settings(args: argparse.Namespace) -> Settings:
    """Settings for a command that talks to an exchange: mainnet needs --live AND allow_live."""
    settings = load_settings(args.config, engine_overrides(args))
    if settings.profile == "live" and args.profile != "live":
        raise ConfigError(
            "profile: 'live' comes from the configuration, but trading real money also needs "
            "--live on the command line"
        )
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.duration) and args.duration >= 0):
        raise ConfigError(f"--duration: must be a number of seconds >= 0, got {args.duration}")
    settings = _engine_settings(args)
    strategy = _strategy(settings)
    _start_logging(settings)
    from aegis import engine  # lazily: `aegis config` must work even if the engine cannot import

    return engine.run(settings, run_for_s=args.duration or None, dry_run=args.dry_run, strategy=strategy)


def _strategy(settings: Settings) -> Any:
    """The configured strategy, built now: a bad path or parameter is a one-line configuration error."""
    if not settings.strategy.enabled:
        return None
    from aegis.strategy.loader import StrategyError, load_strategy

    try:
        return load_strategy(settings.strategy.path, settings.strategy.params)
    except StrategyError as exc:
        raise ConfigError(str(exc)) from None


def cmd_reconcile(args: argparse.Namespace) -> int:
    settings = _engine_settings(args)
    if settings.embedded_sim:
        raise ConfigError("sim.url: reconcile --once needs an exchange to talk to: --sim-url URL, --testnet or --live")
    _start_logging(settings)
    import asyncio

    from aegis.reconcile.once import reconcile_once

    return asyncio.run(reconcile_once(settings, as_json=args.json, pnl=args.pnl))


def cmd_sim(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, sim_overrides(args))
    from aegis.sim.config import DEMO_ACCOUNT, AccountSpec, SimConfig
    from aegis.sim.server import serve

    accounts = [DEMO_ACCOUNT]
    sim = settings.sim
    if sim.demo_api_key != DEMO_ACCOUNT.api_key:  # a renamed demo account must exist for `aegis run`
        accounts.append(AccountSpec(sim.demo_api_key, sim.demo_api_secret.get_secret_value()))
    for text in args.account:
        try:
            accounts.append(AccountSpec.parse(text))
        except ValueError as exc:
            raise ConfigError(f"--account: {exc}") from None
    config = SimConfig(
        speed=sim.speed, accounts=tuple(accounts), data_paths=(sim.data,) if sim.data is not None else ()
    )
    _start_logging(settings)
    try:
        return serve(config, host=sim.host, port=sim.port)
    except OSError as exc:
        raise ConfigError(
            f"sim.port: cannot listen on {sim.host}:{sim.port} ({exc.strerror or exc}); "
            "choose another with --port / sim.port (0 picks a free one)"
        ) from None


def cmd_backtest(args: argparse.Namespace) -> int:
    from aegis.backtest.command import command

    return command(args, _start_logging)


def cmd_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, engine_overrides(args))
    sys.stdout.write(masked_dump(settings, args.format))
    return EXIT_OK


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit code instead of raising SystemExit."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        return _fail(f"invalid configuration: {exc}", EXIT_USAGE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
