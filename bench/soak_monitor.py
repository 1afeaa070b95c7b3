"""The soak's monitor: both sides sampled all along, divergences timed, halts cleared as an operator.

Each sample reads the exchange's account, then the engine's ``/state``, and records every item they
disagree on (a position, an open order or algo order, the USDT wallet) with the exchange time it
was first seen differing; when they agree again the span is closed. Two processes cannot be read
at one instant, so an event between the two reads makes a one-sample span: the check is on the
longest span, against a bound of a reconcile period plus slack, which such blips never reach.
While the engine is down (SIGKILLed, restarting) nothing is compared: open spans restart when it
is back (its start-up reconciliation is what must catch what happened meanwhile). Likewise while
its user stream is disconnected: the engine knows it is blind then (/health says so) and catches
up when it reconnects, so the span restarts at the reconnect. What is timed is divergence the
engine does not know about: a half-open socket it believes in, an event the exchange never sent.
"""

from __future__ import annotations

from typing import Any

from bench.soak_exchange import Exchange, account_view, differences, engine_view
from bench.soak_procs import EngineProcess, get_json, send

# reconcile.interval_s (900 s) + its recheck (2 s), in exchange ms; plus slack for observing two
# processes (``slack_ms``).
RECONCILE_BOUND_MS = 902_000


class Monitor:
    def __init__(self, ex: Exchange, engine: EngineProcess, symbols: tuple[str, ...], slack_ms: int) -> None:
        self.ex = ex
        self.engine = engine
        self.symbols = symbols
        self.bound_ms = RECONCILE_BOUND_MS + slack_ms
        self._user_since: int | None = None  # the user stream's connected_since_ms at the last sample
        self.open: dict[str, tuple[int, str]] = {}  # item -> (first seen ms, what differed)
        self.closed: list[tuple[str, int, int]] = []
        self.kills: list[int] = []
        self.halts: list[str] = []
        self.unplanned_exits: list[str] = []
        self.samples = 0
        self._down = False

    def sample(self) -> int | None:
        """One look at both sides; the exchange time of it (None if the exchange did not answer)."""
        sim = get_json(f"{self.ex.url}/_sim/state", 30.0)
        if sim is None:
            return None
        now = int(sim["clock_ms"])
        if self._down:
            return now
        state = get_json(f"{self.engine.ops_url}/state", 10.0)
        if state is None:
            return now
        self.samples += 1
        if self._blind(state, now):
            return now
        self._track(now, differences(engine_view(state, self.symbols), account_view(sim, self.symbols)))
        self._operator(state, now)
        return now

    def _track(self, now: int, diffs: dict[str, str]) -> None:
        for key, what in diffs.items():
            self.open.setdefault(key, (now, what))
        for key in [k for k in self.open if k not in diffs]:
            first, _ = self.open.pop(key)
            self.closed.append((key, first, now))

    def _blind(self, state: dict[str, Any], now: int) -> bool:
        """The user stream is down, or reconnected since the last sample: open spans restart."""
        user = (state.get("streams") or {}).get("user") or {}
        since = user.get("connected_since_ms") if user.get("connected") else None
        if since is None or since != self._user_since:
            self._user_since = since
            self.engine_up(now)
        return since is None

    def _operator(self, state: dict[str, Any], now: int) -> None:
        """A halt is what the reconciler does on a position mismatch: note it and resume trading."""
        halt = (state.get("trading") or {}).get("halt")
        if halt:
            self.halts.append(f"{now}: {halt}")
            try:
                send("DELETE", f"{self.engine.ops_url}/halt", timeout_s=10.0)
            except OSError:
                pass

    def engine_down(self) -> None:
        self._down = True

    def engine_up(self, now: int) -> None:
        self._down = False
        self.open = {key: (now, what) for key, (_, what) in self.open.items()}

    def spans(self, jumps: list[tuple[int, int]]) -> list[tuple[str, int, int]]:
        """Every span, open ones ended now, with the clock jumps inside them taken out."""
        now = self.ex.now_ms()
        spans = [*self.closed, *((key, first, now) for key, (first, _) in self.open.items())]
        return [(key, first, end - sum(ms for at, ms in jumps if first < at <= end)) for key, first, end in spans]
