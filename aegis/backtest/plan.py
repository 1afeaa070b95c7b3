"""What one backtest replays: symbols, the span of candles, the data, the seed, the fill model, the faults.

The span is checked against the candle files before anything starts, so a bad ``--from``, ``--to``,
``--symbols`` or ``--data`` is one line naming the flag (exit 2), never a replay of invented
candles: outside its files the simulator would ping-pong the series, which a backtest must not see.
The engine warms up on the ``warmup`` candles before ``--from``, so those must be in the files too.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from aegis.config import ConfigError
from aegis.domain import MINUTE_MS

__all__ = ["BacktestPlan", "CandleSpan", "FaultSpec", "parse_faults", "parse_time", "plan_span"]

DEFAULT_FAULT_RATE = 2.0  # chaos events per exchange hour


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """``--faults KIND[,KIND...][@RATE]``: which chaos kinds, how many per exchange hour."""

    kinds: tuple[str, ...]
    rate: float = DEFAULT_FAULT_RATE

    def __str__(self) -> str:
        return f"{','.join(self.kinds)}@{self.rate:g}/h"


@dataclass(frozen=True, slots=True)
class CandleSpan:
    """Open times of the first and last candle of a symbol's files."""

    first_ms: int
    last_ms: int


@dataclass(frozen=True, slots=True)
class BacktestPlan:
    symbols: tuple[str, ...]
    start_ms: int  # open time of the first replayed candle (= exchange time at the start)
    end_ms: int  # exchange time at which the last replayed candle has closed
    warmup: int  # candles before start_ms the engine reads at start-up
    data: Path | None = None
    seed: int = 1
    fill_model: str = "none"
    faults: FaultSpec | None = None

    @property
    def candles(self) -> int:
        """Candles the exchange replays (all symbols), warm-up excluded."""
        return (self.end_ms - self.start_ms) // MINUTE_MS * len(self.symbols)

    def label(self) -> str:
        return f"{','.join(self.symbols)} {iso(self.start_ms)} .. {iso(self.end_ms)}"


def iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def parse_time(flag: str, text: str) -> int:
    """``2025-05-05``, ``2025-05-05T08:00`` (UTC unless an offset is given) or epoch ms."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{flag}: expected a UTC date or time such as 2025-05-05 or 2025-05-05T08:00, got {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return int(value.timestamp() * 1000)


def parse_faults(text: str) -> FaultSpec:
    """``all``, ``drop_user,rest_5xx`` or ``all@4`` (four events per exchange hour)."""
    from aegis.sim.chaos import CHAOS_KINDS

    names, _, rate_text = text.partition("@")
    kinds = CHAOS_KINDS if names.strip() in ("all", "") else tuple(k.strip() for k in names.split(",") if k.strip())
    unknown = [k for k in kinds if k not in CHAOS_KINDS]
    if unknown:
        raise ConfigError(f"--faults: unknown kind {unknown[0]!r}; known: all, {', '.join(CHAOS_KINDS)}")
    try:
        rate = float(rate_text) if rate_text else DEFAULT_FAULT_RATE
    except ValueError:
        rate = -1.0
    if not (0 < rate <= 3600):
        raise ConfigError(f"--faults: the rate after @ is events per exchange hour in (0, 3600], got {rate_text!r}")
    return FaultSpec(tuple(kinds), rate)


def plan_span(
    spans: dict[str, CandleSpan], start: int | None, end: int | None, warmup: int
) -> tuple[int, int]:
    """[start, end) on minute boundaries inside every symbol's files, with ``warmup`` candles before
    it; by default the whole common span. Refusals name the flag to change."""
    first = max(s.first_ms for s in spans.values())
    last = min(s.last_ms for s in spans.values())
    earliest = first + warmup * MINUTE_MS
    latest = last  # the candle at --to must exist: orders sent on the last close fill on its path
    if start is None:
        start = earliest
    elif start % MINUTE_MS:
        raise ConfigError(f"--from: must be on a minute boundary, got {iso(start)} ({start})")
    elif start < earliest:
        raise ConfigError(
            f"--from: the candle files start at {iso(first)}; the strategy needs {warmup} candles before "
            f"--from, so it must be >= {iso(earliest)}"
        )
    if end is None:
        end = latest
    elif end % MINUTE_MS:
        raise ConfigError(f"--to: must be on a minute boundary, got {iso(end)} ({end})")
    elif end > latest:
        raise ConfigError(
            f"--to: the candle files end with the candle of {iso(last)}, and orders sent on the last close fill "
            f"on the candle at --to, so --to must be <= {iso(latest)}"
        )
    if end <= start:
        raise ConfigError(f"--to: must be after --from ({iso(start)}), got {iso(end)}")
    return start, end
