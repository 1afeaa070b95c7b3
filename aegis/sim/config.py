"""Simulator settings and the documented demo account, in one place.

The README, ``aegis sim`` and ``aegis run --sim`` all read the demo constants from here so
that a user who copies them from the docs gets an account that exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

DEMO_API_KEY = "aegis-demo-key"
DEMO_API_SECRET = "aegis-demo-secret"
DEMO_BALANCE_USDT = Decimal("10000")

DATA_DIR = Path(__file__).resolve().parent / "data"
EXCHANGE_INFO_PATH = DATA_DIR / "exchangeInfo.json"
_PLAIN_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?")


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """One simulated account: its API key, secret and starting USDT wallet balance."""

    api_key: str
    secret: str
    balance_usdt: Decimal = DEMO_BALANCE_USDT

    @classmethod
    def parse(cls, text: str) -> AccountSpec:
        """Parse the CLI form ``KEY:SECRET[:USDT_BALANCE]``.

        Error messages never contain the text (it holds a secret): they say which part is wrong."""
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"account must be KEY:SECRET[:USDT_BALANCE] ({len(parts)} ':'-separated parts given)")
        if not parts[0] or not parts[1]:
            raise ValueError(f"account must be KEY:SECRET[:USDT_BALANCE] (empty {'KEY' if not parts[0] else 'SECRET'})")
        if len(parts) == 2:
            return cls(parts[0], parts[1])
        if not _PLAIN_DECIMAL.fullmatch(parts[2]):
            raise ValueError("account USDT_BALANCE must be a plain non-negative decimal such as 10000 or 2500.5")
        return cls(parts[0], parts[1], Decimal(parts[2]))

    def __repr__(self) -> str:  # a spec in a log line or a traceback must not show the secret
        return f"AccountSpec(api_key={self.api_key!r}, secret='***', balance_usdt={self.balance_usdt})"


DEMO_ACCOUNT = AccountSpec(DEMO_API_KEY, DEMO_API_SECRET, DEMO_BALANCE_USDT)


@dataclass(slots=True)
class SimConfig:
    """Everything that shapes one simulator run. Defaults give Binance mainnet behaviour."""

    speed: float = 1.0
    """Exchange time runs this many times faster than the wall (1, 60, 3600...)."""
    start_ms: int | None = None
    """Exchange time at start; None = now on the wall clock."""
    accounts: tuple[AccountSpec, ...] = (DEMO_ACCOUNT,)
    data_paths: tuple[Path, ...] = ()
    """Extra candle files or directories, overriding the packaged sample: ``*_<SYMBOL>_1m*.csv.gz``
    or Binance's kline dumps from data.binance.vision (``BTCUSDT-1m-2024-01.csv``/``.zip``)."""
    replay_aligned: bool = False
    """True: real candles sit at their own open times (a backtest over a month of a dump sees that
    month); False: minute k shows row k mod 2n of the file (any epoch has a market)."""
    use_packaged_data: bool = True
    """Replay the packaged real BTCUSDT/ETHUSDT candles; False = synthetic walk for every symbol."""
    seed: int = 1
    """Seed of the synthetic random walk used for symbols without real candles."""
    exchange_info_path: Path = EXCHANGE_INFO_PATH
    kline_update_ms: int = 2000
    """Cadence of intermediate (x=false) kline updates, in exchange milliseconds."""
    partial_klines: bool = True
    """False publishes only closed klines (x=true): one frame per candle per symbol, and the
    market loop wakes once a minute, what a backtest wants. Binance always sends updates."""
    min_wall_step_s: float = 0.02
    """The market loop never wakes more often than this on the wall (CPU bound at high speeds)."""
    fill_model: str = "none"
    """How taker fills (MARKET, triggered stops, marketable LIMIT) are priced: ``none``,
    ``ticks:N``, ``bps:N`` or ``impact:K`` (see aegis.sim.fillmodel)."""
    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.0005")
    default_leverage: int = 20
    funding_rate: Decimal = Decimal("0.0001")
    """Charged every 8 h (00:00, 08:00, 16:00 UTC) on open positions: longs pay shorts when positive."""
    liquidation: bool = True
    """Close every position of a cross account whose margin balance falls to its maintenance margin."""
    fill_liquidity: Decimal = Decimal("0.25")
    """Share of a bar's volume a resting order may take per bar-length of crossing (partial fills)."""
    rate_limits: bool = True
    """False disables REQUEST_WEIGHT and ORDERS limits (benchmarks); headers are still sent."""
    weight_limit_1m: int | None = None
    """Override of exchangeInfo's REQUEST_WEIGHT per minute."""
    orders_limit_10s: int | None = None
    orders_limit_1m: int | None = None
    ban_after_429s: int = 5
    """Requests a client may send past a 429 in the same window before its IP is banned (418)."""
    ban_ms: int = 120_000
    """First ban length; each further ban doubles it, up to 3 days (Binance: 2 min to 3 days)."""
    timestamp_reference: Literal["sim", "wall", "either"] = "either"
    """Which clock signed ``timestamp`` must match. "either" lets wall-clock clients work on an
    accelerated or jumped exchange clock; "sim" is Binance's exact rule against server time."""
    fault_schedule: tuple[dict[str, Any], ...] = ()
    """Faults (POST /_sim/faults bodies with ``at_ms``) and out-of-band trades (``{"trade": {...},
    "at_ms": T}``) to apply at their exchange times, e.g. ``aegis.sim.chaos.schedule(seed, ...)``."""
    audit_rows: int = 1_000_000
    """Order requests the audit keeps (``GET /_sim/audit``), the oldest dropped first: tests and
    the soak read every row of their run; a backtest, which never reads it, keeps a few."""
    extra: dict[str, str] = field(default_factory=dict)
    """Free-form settings for other simulator modules (faults, streams)."""
