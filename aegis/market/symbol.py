"""One symbol's candle bookkeeping: every gap, duplicate and ordering decision, without I/O.

``MarketFeed`` owns the connections, the REST requests and the store; this module decides, for
each closed candle the stream delivers and each REST range that comes back, what happens to
it. Nothing here awaits, so the rules are tested directly, candle by candle:

* a closed candle whose open time is the previous one + 1 minute is stored at once;
* one that leaves a gap waits (``pending``) until the gap is fetched and stored before it;
* a repeat of the newest one is a duplicate; an older one is out of order (kept if it fills a
  pending gap, by open time); one that REST already stored is dropped;
* what the exchange cannot supply becomes a hole, recorded, never filled: a window that
  contains one is dirty and strategies are not evaluated on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from aegis.domain import MINUTE_MS, Candle
from aegis.market.backfill import missing_ranges

__all__ = ["Job", "SymbolTrack", "Verdict", "hole_ranges"]


class Verdict(Enum):
    """What became of one closed candle from the stream."""

    STORE = "store"  # next in line: hand it to the store now
    QUEUED = "queued"  # behind a gap (or a repair in progress): wait for REST
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    ALREADY_STORED = "already_stored"  # REST got there first (reconnect catch-up)
    OFF_MINUTE = "off_minute"  # an open time that is not a minute boundary: malformed


class Job(Enum):
    """The next piece of REST work a symbol needs, in priority order."""

    WARM_UP = "warm_up"
    CATCH_UP = "catch_up"  # after a reconnect: everything since the last stored candle
    DRAIN = "drain"  # pending candles: store a consecutive run, or fetch the gap before them


@dataclass(eq=False)
class SymbolTrack:
    symbol: str
    connection: int = 0
    last_open: int | None = None  # newest open time decided (handed to the store, or a hole's end)
    stored_last: int | None = None  # newest open time the store has confirmed
    stored: int = 0  # candles the store holds (capped at its capacity)
    newest_seen: int | None = None  # newest closed open time the stream delivered
    pending: dict[int, Candle] = field(default_factory=dict)  # closed candles waiting behind a gap
    pending_since: float | None = None
    warmed: bool = False
    catch_up: bool = False
    ready: bool = False
    ready_queued: bool = False
    repairing: bool = False
    holes: list[tuple[int, int]] = field(default_factory=list)
    error: str = ""
    closed: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    already_stored: int = 0
    gaps: int = 0
    backfilled: int = 0

    # --- the stream ----------------------------------------------------------------------

    def on_closed(self, candle: Candle, now: float) -> Verdict:
        """Classify a closed candle from the stream; ``QUEUED`` ones are now in ``pending``."""
        t = candle.open_time_ms
        if t % MINUTE_MS:
            return Verdict.OFF_MINUTE
        self.closed += 1
        if self.newest_seen is not None and t <= self.newest_seen:
            if t == self.newest_seen:
                self.duplicates += 1
                return Verdict.DUPLICATE
            self.out_of_order += 1
            if (self.last_open is None or t > self.last_open) and t not in self.pending:
                self.queue(candle, now)  # merged by open time with the gap fill
            return Verdict.OUT_OF_ORDER
        self.newest_seen = t
        if self.last_open is not None and t <= self.last_open:
            self.already_stored += 1
            return Verdict.ALREADY_STORED
        if self.next_in_line(t):
            self.last_open = t
            return Verdict.STORE
        self.queue(candle, now)
        return Verdict.QUEUED

    def next_in_line(self, open_ms: int) -> bool:
        return (
            not self.repairing
            and not self.pending
            and self.last_open is not None
            and open_ms == self.last_open + MINUTE_MS
        )

    def queue(self, candle: Candle, now: float) -> None:
        if not self.pending:
            self.pending_since = now
        self.pending[candle.open_time_ms] = candle

    # --- repair --------------------------------------------------------------------------

    def next_job(self) -> Job | None:
        if not self.warmed:
            return Job.WARM_UP
        if self.catch_up:
            return Job.CATCH_UP
        if self.pending:
            return Job.DRAIN
        return None

    def drain_step(self) -> list[Candle] | tuple[int, int] | None:
        """Pending work: a run of consecutive candles to store now, the gap to fetch before the
        oldest pending one, or None after discarding one that REST already covered."""
        nxt = min(self.pending)
        if self.last_open is not None and nxt <= self.last_open:
            del self.pending[nxt]
            return None
        if self.last_open is None or nxt == self.last_open + MINUTE_MS:
            run = []
            while nxt in self.pending:
                run.append(self.pending.pop(nxt))
                nxt += MINUTE_MS
            self.last_open = run[-1].open_time_ms
            return run
        self.gaps += 1
        return (self.last_open + MINUTE_MS, nxt - MINUTE_MS)

    def merge_pending(self, candles: Sequence[Candle], first: int, last: int) -> list[Candle]:
        """REST candles of [first, last] merged with stream candles pending in that range, in order."""
        by_open = {c.open_time_ms: c for c in candles}
        for t in [t for t in self.pending if first <= t <= last]:
            by_open.setdefault(t, self.pending.pop(t))
        return [by_open[t] for t in sorted(by_open)]

    def plan_commit(
        self, candles: Sequence[Candle], first: int, last: int, *, leading: bool, trailing: bool
    ) -> list[list[Candle] | tuple[int, int]]:
        """Store operations for a fetched range: runs of candles, each hole just before the
        candle that follows it. Advances ``last_open`` and records the holes."""
        holes = hole_ranges(candles, first, last, leading=leading, trailing=trailing)
        out: list[list[Candle] | tuple[int, int]] = []
        batch: list[Candle] = []
        for candle in candles:
            while holes and holes[0][1] < candle.open_time_ms:
                if batch:
                    out.append(batch)
                    batch = []
                out.append(self._hole(holes.pop(0)))
            batch.append(candle)
        if batch:
            out.append(batch)
        out.extend(self._hole(h) for h in holes)
        for op in out:
            if isinstance(op, list):
                self.last_open = op[-1].open_time_ms
        return out

    def _hole(self, hole: tuple[int, int]) -> tuple[int, int]:
        self.holes.append(hole)
        self.last_open = max(self.last_open or hole[1], hole[1])
        return hole

    # --- what the strategy may see -------------------------------------------------------

    def in_sync(self) -> bool:
        """Ready, and no gap or reconnect interval is being fetched right now."""
        return self.ready and not self.repairing and not self.pending

    def window_is_clean(self, length: int) -> bool:
        """The last ``length`` stored candles are consecutive minutes: no hole, nothing pending."""
        if length < 1 or not self.in_sync() or self.stored_last is None or self.stored < length:
            return False
        start = self.stored_last - (length - 1) * MINUTE_MS
        return not self.holes or self.holes[-1][1] < start


def hole_ranges(
    candles: Sequence[Candle], first: int, last: int, *, leading: bool, trailing: bool
) -> list[tuple[int, int]]:
    """Stretches of [first, last] that ``candles`` lack and that count as holes.

    Between two candles always; before the first only if a real candle precedes ``first``
    (``leading``); after the last only if a real candle follows ``last`` (``trailing``).
    """
    missing = missing_ranges(candles, first, last)
    if not candles:
        return missing if leading and trailing else []
    oldest, newest = candles[0].open_time_ms, candles[-1].open_time_ms
    return [(a, b) for a, b in missing if (leading or a > oldest) and (trailing or b < newest)]
