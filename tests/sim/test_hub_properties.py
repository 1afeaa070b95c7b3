"""Fan-out invariants of the market hub, over random subscriptions and publish sequences."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.sim.clock import SimClock
from aegis.sim.streams import MarketConn, MarketHub
from tests.sim.wsharness import kline_event

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
T0 = 1_700_000_040_000


class Outbox:
    """Stands in for a WsConn: records what the hub queues for it."""

    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.dropped_reason: str | None = None

    def send(self, data: bytes) -> None:
        self.frames.append(orjson.loads(data))


def stream_of(symbol: str, continuous: bool) -> str:
    return f"{symbol.lower()}_perpetual@continuousKline_1m" if continuous else f"{symbol.lower()}@kline_1m"


subscriptions = st.lists(
    st.tuples(st.booleans(), st.sets(st.tuples(st.sampled_from(SYMBOLS), st.booleans()), max_size=6)),
    min_size=1,
    max_size=5,
)
publishes = st.lists(st.tuples(st.sampled_from(SYMBOLS), st.booleans()), max_size=30)


@settings(max_examples=60, deadline=None)
@given(subscriptions, publishes)
def test_each_connection_gets_exactly_its_streams_in_publish_order(subs: Any, pubs: Any) -> None:
    watched: list[str] = []
    unwatched: list[str] = []
    hub = MarketHub(SimClock(), watched.append, unwatch=unwatched.append)
    conns = []
    for combined, streams in subs:
        mc = MarketConn(Outbox(), combined=combined, delivers_klines=True)  # type: ignore[arg-type]
        hub.conns[mc] = None
        hub.subscribe(mc, [stream_of(s, c) for s, c in streams])
        conns.append((mc, streams))
    assert sorted(watched) == sorted({s for _, streams in subs for s, _ in streams})
    events = []
    for i, (symbol, closed) in enumerate(pubs):
        ev = kline_event(symbol, T0 + i * 60_000, closed=closed)
        hub.on_kline(symbol, ev)
        events.append((symbol, ev))
    for mc, streams in conns:
        expected = []
        for symbol, ev in events:
            for continuous in (False, True):  # the hub sends the plain stream first
                if (symbol, continuous) not in streams:
                    continue
                name = stream_of(symbol, continuous)
                data = ev if not continuous else {"e": "continuous_kline", "E": ev["E"], "ps": symbol, "ct": "PERPETUAL", "k": {k: v for k, v in ev["k"].items() if k != "s"}}
                expected.append({"stream": name, "data": data} if mc.combined else data)
        assert mc.conn.frames == expected
    for mc, _ in conns:
        hub.detach(mc)
    assert sorted(unwatched) == sorted(watched), "every watched symbol is released once nobody streams it"
