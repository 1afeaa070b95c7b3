"""Stream faults: filters in the kline fan-out and mutes on the user stream.

A market filter takes the kline events about to go out and returns what goes out; a user mute
says whether one user event is lost while the sockets stay open.
"""

from __future__ import annotations

from aegis.sim.bus import Payload
from aegis.sim.clock import SimClock
from aegis.sim.faults.record import Fault
from aegis.sim.streams import Event


class PauseMarket:
    """Withhold kline events until N candles have closed for each symbol; the exchange still has them."""

    def __init__(self, fault: Fault, candles: int, symbols: set[str], clock: SimClock) -> None:
        self.fault = fault
        self.candles = candles
        # No symbol named and none streamed yet: pause each symbol as it first shows up.
        self.lazy = not symbols
        self.remaining = dict.fromkeys(symbols, candles)
        self.clock = clock
        self.done = False

    def __call__(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for symbol, event in events:
            if self.lazy and symbol not in self.remaining:
                self.remaining[symbol] = self.candles
            left = self.remaining.get(symbol, 0)
            if left <= 0:
                out.append((symbol, event))
                continue
            self.fault.hits += 1
            if event["k"]["x"]:
                self.remaining[symbol] = left - 1
        if self.remaining and all(v <= 0 for v in self.remaining.values()):
            self.done = True
            self.fault.finish(self.clock.now_ms())
        return out


class DuplicateMarket:
    """Send each of the next N kline events twice."""

    def __init__(self, fault: Fault, count: int, clock: SimClock) -> None:
        self.fault = fault
        self.left = count
        self.clock = clock
        self.done = False

    def __call__(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for ev in events:
            out.append(ev)
            if self.left > 0:
                out.append(ev)
                self.left -= 1
                self.fault.hits += 1
        if self.left <= 0:
            self.done = True
            self.fault.finish(self.clock.now_ms())
        return out


class ReorderMarket:
    """Hold the next N kline events and release them in reverse order."""

    def __init__(self, fault: Fault, count: int, clock: SimClock) -> None:
        self.fault = fault
        self.count = count
        self.held: list[Event] = []
        self.clock = clock
        self.done = False

    def __call__(self, events: list[Event]) -> list[Event]:
        if self.done:
            return events
        out: list[Event] = []
        for ev in events:
            if len(self.held) < self.count:
                self.held.append(ev)
                self.fault.hits += 1
                if len(self.held) == self.count:
                    out.extend(reversed(self.held))
                    self.held = []
                    self.count = 0
                    self.done = True
                    self.fault.finish(self.clock.now_ms())
            else:
                out.append(ev)
        return out

    def flush(self) -> list[Event]:
        """On DELETE: let what is held go, in order."""
        held, self.held, self.done = self.held, [], True
        return held


class PauseUser:
    """Lose user-stream events while the sockets stay open: a stream that is up but silent."""

    def __init__(
        self,
        fault: Fault,
        api_key: str | None,
        until_ms: int | None,
        count: int | None,
        clock: SimClock,
        events: frozenset[str] | None = None,
    ) -> None:
        self.fault = fault
        self.api_key = api_key
        self.events = events  # only these event types ("e") are lost; None: all
        self.until_ms = until_ms
        self.left = count
        self.clock = clock
        self.done = False

    def __call__(self, api_key: str, event: Payload) -> bool:
        if self.done:
            return False
        now = self.clock.now_ms()
        if self.until_ms is not None and now >= self.until_ms:
            self.done = True
            self.fault.finish(now)
            return False
        if self.api_key is not None and api_key != self.api_key:
            return False
        if self.events is not None and event.get("e") not in self.events:
            return False
        self.fault.hits += 1
        if self.left is not None:
            self.left -= 1
            if self.left <= 0:
                self.done = True
                self.fault.finish(now)
        return True
