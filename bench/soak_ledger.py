"""The soak's ledger: what the exchange knows against what the engine knows, each check pass or fail.

Every check compares the engine with the exchange's own record (the simulator's klines, audit,
trades and account), never with the engine's opinion of itself. A check that fails says what
differs; the soak exits non-zero if any does.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.soak_exchange import MINUTE_MS, Exchange

# Codes that mean the engine sent something it should have known Binance refuses: precision,
# filters, parameters. Not the races of closing orders with the market, which happen live as here
# (more often on a loaded machine at 300x, where 10 wall ms are 3 exchange s): -2022, a stop fired
# on the exchange while the exit was on its way (the engine reconciles at once, and the position
# checks catch a phantom); -2021, the mark crossed a stop's level after the engine's check (the
# keeper closes at the market, and the protective-order check catches a position left bare).
BAD_CODES = frozenset({-1100, -1101, -1102, -1106, -1111, -1013, -1116, -1117, -4120, -4164,
                       *range(-4024, -4002)})  # fmt: skip
NEW_ORDER_PATHS = ("/fapi/v1/order", "/fapi/v1/algoOrder")
# ERROR lines that are the engine reporting the exchange's answer, not a failure of the engine; each
# with why. Every other ERROR/CRITICAL line and every traceback fails the soak.
EXPECTED_ERRORS: tuple[tuple[str, str], ...] = (
    (r"rejected by the exchange: code -2019 ", "margin insufficient: the exchange's answer, counted under rejections"),
    (r"TRADING HALT engaged: position ", "reconcile.on_position = halt: a position the stream did not deliver "
     "(the soak's operator clears it; counted under halts)"),
)
PROBLEM_LINE = re.compile(r"\| (ERROR|CRITICAL) +\||^Traceback|^\w+Error: ")


@dataclass
class Check:
    name: str
    figure: str
    ok: bool
    detail: list[str] = field(default_factory=list)


@dataclass
class Ledger:
    checks: list[Check] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)

    def check(self, name: str, figure: Any, ok: bool, detail: list[str] | None = None) -> None:
        self.checks.append(Check(name, str(figure), ok, detail or []))

    def figure(self, name: str, value: Any) -> None:
        self.figures.append((name, str(value)))

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        out = ["figures:"]
        out += [f"  {name:<38} {value}" for name, value in self.figures]
        out.append("checks:")
        for c in self.checks:
            out.append(f"  [{'ok' if c.ok else 'FAIL'}] {c.name:<44} {c.figure}")
            out += [f"         {line}" for line in c.detail[:15]]
            if len(c.detail) > 15:
                out.append(f"         ... {len(c.detail) - 15} more")
        out.append(f"soak: {'PASS' if self.ok else 'FAIL'}")
        return out


# --- candles -------------------------------------------------------------------------------------
def check_candles(ledger: Ledger, ex: Exchange, stored: dict[str, list[list[Any]]], holes: dict[str, int],
                  newest_closed_ms: int) -> None:  # fmt: skip
    """The engine's stored closed candles against the exchange's klines over the same span."""
    missing, duplicated, differing, stale = 0, 0, 0, 0
    detail: list[str] = []
    for symbol, rows in stored.items():
        times = [int(r[0]) for r in rows]
        dups = [t for t, n in Counter(times).items() if n > 1]
        duplicated += len(dups)
        if not rows:
            detail.append(f"{symbol}: no candles stored")
            missing += 1
            continue
        truth = {int(k[0]): k for k in ex.klines(symbol, min(times), max(times))}
        ours = {int(r[0]): r for r in rows}
        gone = sorted(set(truth) - set(ours))
        missing += len(gone)
        wrong = [t for t in ours if t in truth and [str(x) for x in ours[t][:11]] != [str(x) for x in truth[t][:11]]]
        invented = [t for t in ours if t not in truth]
        differing += len(wrong) + len(invented)
        if max(times) < newest_closed_ms - 3 * MINUTE_MS:
            stale += 1
            detail.append(f"{symbol}: newest stored {max(times)}, exchange closed up to {newest_closed_ms}")
        for what, items in (("missing", gone), ("duplicated", dups), ("differing", wrong), ("invented", invented)):
            if items:
                detail.append(f"{symbol}: {len(items)} {what}, first at {items[0]}")
    total = sum(len(r) for r in stored.values())
    bad = missing + duplicated + differing + stale + sum(holes.values())
    figure = (f"{total} stored; missing {missing}, duplicated {duplicated}, differing/invented {differing}, "
              f"holes {sum(holes.values())}, stale symbols {stale}")  # fmt: skip
    ledger.check("closed candles vs exchange klines", figure, bad == 0, detail)


# --- the audit -----------------------------------------------------------------------------------
def accepted_orders(audit: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(client id, row) of every new order or algo order the exchange accepted."""
    out = []
    for row in audit:
        if row["method"] != "POST" or row["path"] not in NEW_ORDER_PATHS or row["http_status"] != 200:
            continue
        cid = row.get("clientOrderId") or row.get("clientAlgoId")
        if cid:
            out.append((str(cid), row))
    return out


def check_audit(ledger: Ledger, audit: list[dict[str, Any]], journaled: set[str]) -> dict[int, str]:
    """Duplicates, rejections and orders the engine does not know; returns orderId -> client id."""
    accepted = accepted_orders(audit)
    ours = [(cid, row) for cid, row in accepted if cid.startswith("ae.")]
    counts = Counter(cid for cid, _ in ours)
    dups = sorted(cid for cid, n in counts.items() if n > 1)
    ledger.figure("orders accepted (ours / out-of-band)", f"{len(ours)} / {len(accepted) - len(ours)}")
    ledger.check("duplicate orders (same client id accepted twice)", len(dups), not dups, dups)
    unknown = sorted(set(counts) - journaled)
    ledger.check("orders on the exchange not in the journal", len(unknown), not unknown, unknown)
    codes: Counter[int] = Counter()
    for row in audit:
        if row["http_status"] != 200 and row["path"] in NEW_ORDER_PATHS and row["method"] == "POST":
            codes[int(row.get("code", 0))] += 1
    bad = {code: n for code, n in codes.items() if code in BAD_CODES}
    text = ", ".join(f"{code}: {n}" for code, n in sorted(codes.items())) or "none"
    ledger.check("rejections for precision, filters, parameters", sum(bad.values()), not bad, [f"all by code: {text}"])
    return {int(row["orderId"]): cid for cid, row in accepted if row.get("orderId")}


# --- protective orders ---------------------------------------------------------------------------
def check_orphans(ledger: Ledger, ex: Exchange, account: dict[str, Any], now_ms: int, grace_ms: int) -> None:
    """A closePosition stop or take-profit of ours left on a symbol without a position (its position
    closed more than ``grace_ms`` ago) would close the next position there at a stale level."""
    flat = {s for s in ex.symbols if not any(p["symbol"] == s and Decimal(p["positionAmt"]) for p in account["positions"])}
    orphans = []
    for algo in account["open_algo_orders"]:
        symbol = algo["symbol"]
        if symbol not in flat or not str(algo["clientAlgoId"]).startswith("ae.") or not algo.get("closePosition"):
            continue
        last_trade = max((int(t["time"]) for t in ex.trades(symbol)), default=0)
        if now_ms - last_trade > grace_ms:
            orphans.append(f"{symbol} {algo['orderType']} {algo['clientAlgoId']} (flat since {last_trade})")
    ledger.check("protective orders left on a flat symbol", len(orphans), not orphans, orphans)


# --- fills ---------------------------------------------------------------------------------------
def check_fills(
    ledger: Ledger, ex: Exchange, journal_fills: set[tuple[str, int, int]], cids: dict[int, str], until_ms: int
) -> int:
    """Every trade of ours on the exchange up to ``until_ms`` (the last pass the engine made before
    it stopped) is in its journal; returns how many there were."""
    missing: list[str] = []
    ours_total = 0
    for symbol in ex.symbols:
        for trade in ex.trades(symbol):
            if int(trade["time"]) > until_ms:
                continue
            order_id = int(trade["orderId"])
            cid = cids.get(order_id)
            if cid is None:  # a triggered stop's order, or an out-of-band one: ask the exchange
                cid = cids[order_id] = ex.client_id_of(symbol, order_id)
            if not cid.startswith("ae."):
                continue
            ours_total += 1
            if (symbol, order_id, int(trade["id"])) not in journal_fills:
                missing.append(f"{symbol} order {order_id} ({cid}) trade {trade['id']} at {trade['time']}")
    ledger.check("fills on the exchange not in the journal", len(missing), not missing, missing)
    return ours_total


# --- the journal ---------------------------------------------------------------------------------
def read_journal(path: Path) -> tuple[set[str], set[tuple[str, int, int]], list[dict[str, Any]]]:
    """Client ids of every intent, the fills' keys, and the reconcile reports (oldest first)."""
    import json

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        intents = {r[0] for r in db.execute("SELECT client_id FROM intents")}
        fills = {(r[0], int(r[1]), int(r[2])) for r in db.execute("SELECT symbol, order_id, trade_id FROM fills")}
        reports = [{"at_ms": r[0], **json.loads(r[1])}
                   for r in db.execute("SELECT at_ms, body FROM reports WHERE kind='reconcile' ORDER BY seq")]  # fmt: skip
    finally:
        db.close()
    return intents, fills, reports


# --- the engine's logs ---------------------------------------------------------------------------
def check_logs(ledger: Ledger, logs: list[Path]) -> None:
    unexpected: list[str] = []
    expected: Counter[str] = Counter()
    for path in logs:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not PROBLEM_LINE.search(line):
                continue
            why = next((why for pattern, why in EXPECTED_ERRORS if re.search(pattern, line)), None)
            if why is None:
                unexpected.append(f"{path.name}: {line[:240]}")
            else:
                expected[why] += 1
    detail = [*unexpected, *(f"expected x{n}: {why}" for why, n in expected.items())]
    ledger.check("unexpected ERROR lines and tracebacks", len(unexpected), not unexpected, detail)


# --- divergence ----------------------------------------------------------------------------------
def check_divergence(ledger: Ledger, spans: list[tuple[str, int, int]], bound_ms: int) -> None:
    """``spans``: (item, first seen differing, agreeing again) in exchange ms, from the monitor."""
    longest = sorted(spans, key=lambda s: s[2] - s[1], reverse=True)
    worst = (longest[0][2] - longest[0][1]) if longest else 0
    detail = [f"{key}: {(end - start) / 1000:.0f} s from {start}" for key, start, end in longest[:8]]
    figure = f"{worst / 1000:.0f} s of exchange time over {len(spans)} divergences (bound {bound_ms / 1000:.0f} s)"
    ledger.check("longest divergence left standing", figure, worst <= bound_ms, detail)


def check_memory(ledger: Ledger, lives: list[Any], bound_mb: float) -> None:
    """RSS growth of the longest-lived engine process, from 10% into its life to its end."""
    best = max(lives, key=lambda life: len(life.rss_kb), default=None)
    if best is None or len(best.rss_kb) < 4:
        ledger.check("engine RSS growth", "not enough samples", True)
        return
    samples = best.rss_kb
    base = samples[len(samples) // 10][1]
    peak = max(kb for _, kb in samples[len(samples) // 10 :])
    growth_mb = (samples[-1][1] - base) / 1024
    figure = (f"{growth_mb:+.1f} MB (life {best.number}: {base / 1024:.0f} -> {samples[-1][1] / 1024:.0f} MB, "
              f"peak {peak / 1024:.0f} MB, {len(samples)} samples; bound {bound_mb:.0f} MB)")  # fmt: skip
    ledger.check("engine RSS growth", figure, growth_mb <= bound_mb)
