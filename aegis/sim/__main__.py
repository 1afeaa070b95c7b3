"""``python -m aegis.sim``: the simulator alone, without the engine's settings.

    python -m aegis.sim --port 8900 --speed 60 --account mykey:mysecret:50000 --data ./candles

``aegis sim`` (aegis/cli.py) is the usual entry point; this one needs nothing outside aegis.sim.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aegis.sim import fillmodel
from aegis.sim.config import DEMO_ACCOUNT, AccountSpec, SimConfig
from aegis.sim.server import DEFAULT_HOST, serve


def parse_args(argv: list[str] | None = None) -> tuple[SimConfig, str, int]:
    ap = argparse.ArgumentParser(
        prog="python -m aegis.sim", description="A Binance USD-M futures exchange on loopback."
    )
    ap.add_argument("--host", default=DEFAULT_HOST)
    ap.add_argument("--port", type=int, default=8765, help="0 picks a free port (printed at start)")
    ap.add_argument("--speed", type=float, default=1.0, help="exchange time runs this many times faster")
    ap.add_argument("--start-ms", type=int, default=None, help="exchange time at start, epoch ms (default: now)")
    ap.add_argument(
        "--data", type=Path, action="append", default=[],
        help="candle file or directory: *_<SYMBOL>_1m*.csv.gz or data.binance.vision dumps (BTCUSDT-1m-2024-01.zip)",
    )
    ap.add_argument("--account", action="append", default=[], metavar="KEY:SECRET[:USDT_BALANCE]")
    ap.add_argument("--synthetic", action="store_true", help="a seeded random walk for every symbol")
    ap.add_argument("--no-rate-limits", action="store_true")
    ap.add_argument("--fill-model", default="none", help="none | ticks:N | bps:N | impact:K (taker fill prices)")
    ap.add_argument("--closed-klines-only", action="store_true", help="publish only closed klines (x=true)")
    ap.add_argument("--aligned", action="store_true", help="replay real candles at their own open times")
    args = ap.parse_args(argv)
    try:
        accounts = tuple(AccountSpec.parse(a) for a in args.account) or (DEMO_ACCOUNT,)
        fillmodel.parse(args.fill_model)
    except ValueError as exc:
        ap.error(str(exc))
    config = SimConfig(
        speed=args.speed,
        start_ms=args.start_ms,
        accounts=accounts,
        data_paths=tuple(args.data),
        use_packaged_data=not args.synthetic,
        rate_limits=not args.no_rate_limits,
        fill_model=args.fill_model,
        partial_klines=not args.closed_klines_only,
        replay_aligned=args.aligned,
    )
    return config, args.host, args.port


def main(argv: list[str] | None = None) -> int:
    config, host, port = parse_args(argv)
    return serve(config, host, port)


if __name__ == "__main__":
    sys.exit(main())
