"""What a run records for its report: the equity curve, sampled once per closed minute.

Equity = the quote asset's wallet balance + every open position's unrealized PnL at the newest
closed candle's close. Samples are kept compactly (two ints and a float per minute), so a month of
minutes costs a few megabytes, and a run's memory stays flat enough over its length.
"""

from __future__ import annotations

from array import array
from decimal import Decimal

from aegis.domain import ZERO
from aegis.state import StateStore
from aegis.virtualtime import call_after_instant

__all__ = ["EquityRecorder"]

class EquityRecorder:
    def __init__(self, state: StateStore, *, quote_asset: str = "USDT") -> None:
        self._state = state
        self._quote = quote_asset
        self.times = array("q")  # exchange ms of each sample (a closed minute)
        self.equity = array("d")  # equity then, in the quote asset (float: it is reported, not traded)
        self.exposed = array("b")  # 1 if any position was open
        self.start_equity: Decimal | None = None
        self._pending_minute: int | None = None  # the minute of the sample asked for and not yet taken

    def sample_soon(self, at_ms: int) -> None:
        """``sample(at_ms)`` once the events of the current instant are processed. Once per minute
        asked: every symbol's close asks at the same instant, and the later samples of the minute
        would find the same equity and replace it (a loop callback per symbol and candle)."""
        minute = at_ms - at_ms % 60_000
        if self._pending_minute == minute:
            return
        self._pending_minute = minute
        call_after_instant(self._sample_due, at_ms)

    def _sample_due(self, at_ms: int) -> None:
        self._pending_minute = None
        self.sample(at_ms)

    def sample(self, at_ms: int) -> None:
        """Record the equity at ``at_ms`` (one sample per minute: a later call in the same minute
        replaces it). Nothing is recorded before the account's balance is known."""
        if self._state.balance(self._quote) is None:
            return
        value, exposed = self.current()
        if self.start_equity is None:
            self.start_equity = value
        minute = at_ms - at_ms % 60_000
        if self.times and minute < self.times[-1]:
            return  # a repaired candle of an earlier minute, read after a newer one: the curve only goes forward
        if self.times and self.times[-1] == minute:
            self.equity[-1], self.exposed[-1] = float(value), exposed
            return
        self.times.append(minute)
        self.equity.append(float(value))
        self.exposed.append(exposed)

    def current(self) -> tuple[Decimal, int]:
        balance = self._state.balance(self._quote)
        value = balance.wallet_balance if balance is not None else ZERO
        exposed = 0
        for position in self._state.positions():
            if position.amount == 0:
                continue
            exposed = 1
            last = self._state.tail(position.symbol, 1)
            if last:
                value += position.amount * (last[0].close - position.entry_price)
        return value, exposed
