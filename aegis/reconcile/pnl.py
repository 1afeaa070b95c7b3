"""Realized PnL and fees: the journal's fills against the exchange's income history, trade by trade.

Binance books a REALIZED_PNL and a COMMISSION row in ``GET /fapi/v1/income`` for every fill, each
naming its trade (``tradeId``); the journal keeps every fill the engine saw. So a window of time is
compared trade by trade, per symbol: a trade on both sides must carry the same amounts, a trade
the exchange booked and the journal lacks (a fill while the engine was down: a protective stop
that triggered) is fetched from ``userTrades`` and adopted into the journal, and a trade the
journal has and the exchange does not is a difference nothing explains. A symbol whose totals
differ by more than the tolerance is a mismatch, reported to the cent.

Funding fees are listed per symbol from the exchange but not compared: under cross margin the
user stream books them on the wallet without naming the symbol, so the journal cannot have them.

The window ends ``SETTLE_MS`` before now, so fills still on their way to the journal are not
counted as missing; income is read in pages of 1,000 rows (weight 30 each), all types at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from loguru import logger

from aegis.domain import ZERO, Fill, Income

__all__ = ["SETTLE_MS", "IncomeSource", "PnlAuditor", "PnlCheck", "SymbolPnl", "check_pnl", "compare"]

SETTLE_MS = 10_000
PAGE = 1000
_COMPARED = ("REALIZED_PNL", "COMMISSION")


class IncomeSource(Protocol):
    """The REST calls the check needs (``aegis.binance.BinanceRest`` has them)."""

    async def income(
        self, *, start_ms: int | None = None, end_ms: int | None = None, limit: int = 1000, page: int | None = None
    ) -> list[Income]: ...

    async def user_trades(self, symbol: str, *, start_ms: int | None = None, end_ms: int | None = None) -> list[Fill]: ...


class FillSink(Protocol):
    async def record_fill(self, fill: Fill) -> bool: ...


@dataclass
class SymbolPnl:
    """One symbol's realized PnL and commissions (fees as Binance books them: negative), both sides."""

    symbol: str
    journal_realized: Decimal = ZERO
    journal_fees: Decimal = ZERO
    exchange_realized: Decimal = ZERO
    exchange_fees: Decimal = ZERO
    funding: Decimal = ZERO  # the exchange's, listed only
    journal_only: list[int] = field(default_factory=list)  # trade ids the exchange has not booked
    exchange_only: list[int] = field(default_factory=list)  # trade ids the journal does not have
    adopted: list[int] = field(default_factory=list)  # trade ids taken from the exchange into the journal

    def differs(self, tolerance: Decimal) -> bool:
        gap = max(abs(self.journal_realized - self.exchange_realized), abs(self.journal_fees - self.exchange_fees))
        return gap > tolerance or bool(self.journal_only or self.exchange_only)

    def line(self) -> str:
        text = (
            f"{self.symbol}: realized PnL journal {self.journal_realized:f} exchange {self.exchange_realized:f}"
            f" (diff {self.journal_realized - self.exchange_realized:f}), fees journal {self.journal_fees:f}"
            f" exchange {self.exchange_fees:f} (diff {self.journal_fees - self.exchange_fees:f})"
        )
        if self.journal_only:
            text += f"; trades the exchange never booked: {', '.join(map(str, self.journal_only))}"
        if self.exchange_only:
            text += f"; trades missing from the journal: {', '.join(map(str, self.exchange_only))}"
        return text


@dataclass(frozen=True)
class PnlCheck:
    since_ms: int
    until_ms: int
    symbols: dict[str, SymbolPnl]
    tolerance: Decimal

    @property
    def differences(self) -> tuple[str, ...]:
        """One line per symbol that differs beyond the tolerance (the reconcile report's ``pnl``)."""
        return tuple(s.line() for _, s in sorted(self.symbols.items()) if s.differs(self.tolerance))

    @property
    def adopted(self) -> int:
        return sum(len(s.adopted) for s in self.symbols.values())

    def lines(self) -> list[str]:
        """Every symbol, for a report a person reads."""
        out = []
        for symbol, s in sorted(self.symbols.items()):
            out.append(
                f"{symbol}: realized {s.exchange_realized:f}, fees {s.exchange_fees:f}, funding {s.funding:f}"
                f" ({'MISMATCH' if s.differs(self.tolerance) else 'matches the journal'}"
                f"{f'; {len(s.adopted)} trade(s) adopted from the exchange' if s.adopted else ''})"
            )
        return out


def _fee(fill: Fill) -> Decimal:
    """A fill's commission as Binance books it in income: negative, in USDT (other assets not compared)."""
    return -fill.commission if fill.commission_asset in ("USDT", "") else ZERO


def compare(fills: Iterable[Fill], income: Iterable[Income], tolerance: Decimal, since_ms: int, until_ms: int) -> PnlCheck:
    """Sum both sides per symbol and list the trades only one side has."""
    symbols: dict[str, SymbolPnl] = {}
    ours: dict[str, set[int]] = defaultdict(set)
    for fill in fills:
        s = symbols.setdefault(fill.symbol, SymbolPnl(fill.symbol))
        s.journal_realized += fill.realized_pnl
        s.journal_fees += _fee(fill)
        ours[fill.symbol].add(fill.trade_id)
    booked: dict[str, set[int]] = defaultdict(set)
    for row in income:
        if row.type == "FUNDING_FEE" and row.symbol:
            symbols.setdefault(row.symbol, SymbolPnl(row.symbol)).funding += row.amount
        if row.type not in _COMPARED or not row.symbol or row.asset not in ("USDT", ""):
            continue
        s = symbols.setdefault(row.symbol, SymbolPnl(row.symbol))
        if row.type == "REALIZED_PNL":
            s.exchange_realized += row.amount
        else:
            s.exchange_fees += row.amount
        if row.trade_id.isdigit():
            booked[row.symbol].add(int(row.trade_id))
    for symbol, s in symbols.items():
        s.journal_only = sorted(ours[symbol] - booked[symbol])
        s.exchange_only = sorted(booked[symbol] - ours[symbol])
    return PnlCheck(since_ms, until_ms, symbols, tolerance)


async def income_window(rest: IncomeSource, since_ms: int, until_ms: int) -> list[Income]:
    """Every income row of the window, page by page (deduplicated by transaction id)."""
    rows: dict[int, Income] = {}
    page = 1
    while True:
        batch = await rest.income(start_ms=since_ms, end_ms=until_ms, limit=PAGE, page=page)
        rows.update((r.tran_id, r) for r in batch)
        if len(batch) < PAGE:
            return sorted(rows.values(), key=lambda r: (r.time_ms, r.tran_id))
        page += 1


async def _adopt(rest: IncomeSource, journal: FillSink, check: PnlCheck, income: Sequence[Income]) -> list[Fill]:
    """Fetch the trades the journal lacks (userTrades over their time span) and journal them."""
    adopted = []
    for symbol, s in sorted(check.symbols.items()):
        if not s.exchange_only:
            continue
        wanted = set(s.exchange_only)
        times = [r.time_ms for r in income if r.symbol == symbol and r.trade_id.isdigit() and int(r.trade_id) in wanted]
        for fill in await rest.user_trades(symbol, start_ms=min(times), end_ms=max(times)):
            if fill.trade_id in wanted and await journal.record_fill(fill):
                adopted.append(fill)
    return adopted


async def check_pnl(
    rest: IncomeSource,
    journal_fills: Sequence[Fill],
    since_ms: int,
    now_ms: int,
    tolerance: Decimal,
    *,
    adopt_into: FillSink | None = None,
) -> PnlCheck:
    """Compare ``[since_ms, now_ms - SETTLE_MS]``; with ``adopt_into``, trades the journal lacks are
    fetched, journaled and counted on the journal's side (listed in ``adopted``)."""
    until_ms = max(since_ms, now_ms - SETTLE_MS)
    fills = [f for f in journal_fills if since_ms <= f.time_ms <= until_ms]
    income = await income_window(rest, since_ms, until_ms)
    check = compare(fills, income, tolerance, since_ms, until_ms)
    if adopt_into is None or not any(s.exchange_only for s in check.symbols.values()):
        return check
    adopted = await _adopt(rest, adopt_into, check, income)
    check = compare([*fills, *adopted], income, tolerance, since_ms, until_ms)
    for fill in adopted:
        check.symbols[fill.symbol].adopted.append(fill.trade_id)
    return check


class JournalFills(FillSink, Protocol):
    async def fills(self, since_ms: int = 0) -> list[Fill]: ...


class PnlAuditor:
    """The engine's periodic PnL check: each window starts where the last clean one ended, the first
    one after the journal's last fill before start-up (fills while the engine was down are adopted),
    at most ``LOOKBACK_MS`` back."""

    LOOKBACK_MS = 7 * 86_400_000

    def __init__(self, rest: IncomeSource, journal: JournalFills, tolerance: Decimal, started_ms: int) -> None:
        self._rest = rest
        self._journal = journal
        self._tolerance = tolerance
        self._started_ms = started_ms
        self._since: int | None = None
        self.last: PnlCheck | None = None

    async def __call__(self, now_ms: int) -> tuple[str, ...]:
        """The difference lines of one check (empty when the journal and the exchange agree)."""
        if self._since is None:
            self._since = await self._first_since()
        check = await check_pnl(
            self._rest, await self._journal.fills(self._since), self._since, now_ms, self._tolerance, adopt_into=self._journal
        )
        self.last = check
        if check.adopted:
            logger.warning("pnl: {} trade(s) booked by the exchange were missing from the journal; adopted", check.adopted)
        if not check.differences:
            self._since = check.until_ms + 1
        return check.differences

    async def _first_since(self) -> int:
        """After the journal's last fill before start-up; a journal without fills starts now (the
        account's older history is not the engine's to adopt)."""
        floor = self._started_ms - self.LOOKBACK_MS
        before = [f.time_ms for f in await self._journal.fills(floor) if f.time_ms < self._started_ms]
        return max(before) + 1 if before else self._started_ms
