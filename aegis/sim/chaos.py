"""A reproducible chaos schedule: the faults Binance produces, at seed-drawn exchange times.

``schedule(seed, start_ms, end_ms)`` draws fault events as a Poisson process (``rate`` per
exchange hour) over [start_ms, end_ms), each of a kind drawn from ``kinds`` with its parameters
drawn too; the same arguments give the same list, byte for byte. Each entry is a
``POST /_sim/faults`` body with ``at_ms`` (or, for ``out_of_band_trade``, a ``POST /_sim/trade``
body under the key ``"trade"`` with ``at_ms``), so it can be sent over the admin API
(``SimAdmin.apply_schedule``) or given to ``SimConfig.fault_schedule`` for a backtest.

Kinds: drop_market, drop_user, freeze_market, freeze_user (half-open sockets), pause_market,
expire_listen_key, keepalive_failure (PUT listenKey answered 503), rest_5xx, rate_limit_429,
ban_418, unknown_accepted_invisible (an order executed, answered as unknown, and invisible to
queries for a while), unknown_rejected (an order not executed but answered as unknown),
out_of_band_trade (needs ``api_key``), clock_jump (forward), latency.
"""

from __future__ import annotations

import random
from typing import Any

from aegis.sim.faults.http import UNKNOWN_503_MSG

HOUR_MS = 3_600_000
INTERNAL_1001_MSG = "Internal error; unable to process your request. Please try again."
CHAOS_KINDS = (
    "drop_market",
    "drop_user",
    "freeze_market",
    "freeze_user",
    "pause_market",
    "expire_listen_key",
    "keepalive_failure",
    "rest_5xx",
    "rate_limit_429",
    "ban_418",
    "unknown_accepted_invisible",
    "unknown_rejected",
    "out_of_band_trade",
    "clock_jump",
    "latency",
)

Entry = dict[str, Any]


def _entries(kind: str, rng: random.Random, api_key: str | None, symbols: tuple[str, ...], qty: str) -> list[Entry]:
    """The admin bodies for one chaos event of ``kind`` (without at_ms)."""
    order = {"path": "/fapi/v1/order", "method": "POST"}
    table: dict[str, list[Entry]] = {
        "drop_market": [{"kind": "drop_ws", "scope": "market"}],
        "drop_user": [{"kind": "drop_ws", "scope": "user"}],
        "freeze_market": [{"kind": "freeze_ws", "scope": "market"}],
        "freeze_user": [{"kind": "freeze_ws", "scope": "user"}],
        "pause_market": [{"kind": "pause_market", "candles": rng.randint(1, 5)}],
        "expire_listen_key": [{"kind": "expire_listen_key"}],
        "keepalive_failure": [
            {"kind": "fail_requests", "path": "/fapi/v1/listenKey", "method": "PUT", "count": rng.randint(1, 3),
             "status": 503, "code": -1001, "msg": INTERNAL_1001_MSG}
        ],
        "rest_5xx": [{"kind": "fail_requests", "count": rng.randint(1, 10), "status": 503, "code": -1008}],
        "rate_limit_429": [{"kind": "rate_limit", "status": 429, "seconds": rng.randint(5, 60)}],
        "ban_418": [{"kind": "rate_limit", "status": 418, "seconds": rng.randint(120, 600)}],
        "unknown_accepted_invisible": [
            {"kind": "order_lag", "seconds": rng.randint(5, 120), "events": rng.choice(("live", "delayed"))},
            {"kind": "unknown_outcome", **order, "mode": rng.choice(("503", "-1007", "timeout")), "hold_s": 30},
        ],
        "unknown_rejected": [
            {"kind": "fail_requests", **order, "status": 503, "code": -1000, "msg": UNKNOWN_503_MSG}
        ],
        "clock_jump": [{"kind": "clock_jump", "ms": rng.randint(1, 15) * 60_000}],
        "latency": [{"kind": "latency", "ms": rng.randint(100, 3000), "seconds": rng.randint(10, 120)}],
    }
    if kind == "out_of_band_trade":
        if api_key is None:
            return []
        side = rng.choice(("BUY", "SELL"))
        return [{"trade": {"api_key": api_key, "symbol": rng.choice(symbols), "side": side, "quantity": qty,
                           "events": rng.random() < 0.7}}]
    if kind not in table:
        raise ValueError(f"unknown chaos kind {kind!r}; known: {', '.join(CHAOS_KINDS)}")
    return table[kind]


def schedule(
    seed: int,
    start_ms: int,
    end_ms: int,
    kinds: tuple[str, ...] = CHAOS_KINDS,
    rate: float = 2.0,
    *,
    api_key: str | None = None,
    symbols: tuple[str, ...] = ("BTCUSDT",),
    trade_quantity: str = "0.002",
) -> list[Entry]:
    """Seeded chaos over [start_ms, end_ms): ``rate`` events per exchange hour on average."""
    if rate <= 0 or end_ms <= start_ms or not kinds:
        raise ValueError("need rate > 0, end_ms > start_ms and at least one kind")
    for kind in kinds:
        if kind not in CHAOS_KINDS:
            raise ValueError(f"unknown chaos kind {kind!r}; known: {', '.join(CHAOS_KINDS)}")
    rng = random.Random(seed)
    out: list[Entry] = []
    t = float(start_ms)
    while True:
        t += rng.expovariate(rate / HOUR_MS)
        if t >= end_ms:
            return out
        for entry in _entries(rng.choice(kinds), rng, api_key, symbols, trade_quantity):
            out.append({**entry, "at_ms": int(t)})
