"""``aegis reconcile --once``: one pass from cron or monitoring, with an exit code to act on.

When an engine is running with the same journal, it is asked for a pass through its ops endpoint
(POST /reconcile) and its report is printed: two processes must not compete over one account.
Otherwise the exchange's snapshot is compared with the journal's view of the account: our open
orders (acknowledged, not closed) and positions (the net of the journal's fills), or with an empty
view when there is no journal. Balances are not in the journal and are listed, not compared.
With ``--pnl``, the journal's realized PnL and fees are compared with the exchange's income
history trade by trade (``aegis.reconcile.pnl``), read-only.

Exit codes: 0 everything matches, 1 mismatches, 2 a usage, configuration or connection error.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from decimal import Decimal
from typing import Any, TextIO

import aiohttp

from aegis.binance import BinanceRest, ExchangeError
from aegis.clock import Clock
from aegis.config import Settings
from aegis.domain import ZERO, Order, OrderStatus, OrderType, Position, Side
from aegis.exitcodes import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE
from aegis.reconcile.diff import Kind, diff
from aegis.reconcile.pnl import PnlCheck, check_pnl
from aegis.reconcile.reconciler import fetch_snapshot
from aegis.reconcile.report import Finding, Report
from aegis.state import AccountSnapshot, StateStore
from aegis.trading.clientid import is_ours
from aegis.trading.journal import Journal, open_journal

__all__ = ["ENGINE_RECORD", "reconcile_once"]

ENGINE_RECORD = "engine"  # the journal report a running engine leaves: its pid and ops URL


async def reconcile_once(settings: Settings, *, as_json: bool, pnl: bool = False, out: TextIO = sys.stdout) -> int:
    journal_path = settings.journal.path
    journal = await open_journal(journal_path) if journal_path.is_file() else None
    try:
        report = await _from_running_engine(journal) if journal is not None else None
        if report is None:
            report = await _one_pass(settings, journal, pnl=pnl)
    except (ExchangeError, OSError, aiohttp.ClientError) as exc:
        print(f"aegis: reconcile: cannot reach the exchange: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if journal is not None:
            await journal.close()
    _print(report, as_json=as_json, out=out)
    return EXIT_OK if report.get("clean") else EXIT_MISMATCH


async def _from_running_engine(journal: Journal) -> dict[str, Any] | None:
    records = await journal.reports(ENGINE_RECORD, limit=1)
    if not records or records[0].get("stopped"):
        return None
    pid, url = records[0].get("pid"), records[0].get("ops_url")
    if not isinstance(pid, int) or not isinstance(url, str) or not _alive(pid):
        return None
    try:
        async with aiohttp.ClientSession() as http, http.post(f"{url}/reconcile", timeout=aiohttp.ClientTimeout(total=120)) as r:
            if r.status != 200:
                return None
            body: dict[str, Any] = await r.json()
    except aiohttp.ClientError:
        return None
    body["source"] = f"the running engine (pid {pid}, {url})"
    return body


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _one_pass(settings: Settings, journal: Journal | None, *, pnl: bool) -> dict[str, Any]:
    clock = Clock()
    urls = settings.endpoint()
    key, secret = settings.credentials()
    async with BinanceRest(
        urls.rest_url, key.get_secret_value(), secret.get_secret_value(), clock,
        recv_window_ms=settings.rest.recv_window_ms, timeout_s=settings.rest.timeout_s,
    ) as rest:  # fmt: skip
        await rest.server_clock.sync()
        snapshot = await fetch_snapshot(rest, rest.server_clock, settings.symbols)
        check = await _pnl(rest, journal, settings) if pnl and journal is not None else None
    view = StateStore()
    if journal is not None:
        await _journal_view(journal, view, snapshot)
    findings = []
    for mismatch in diff(view, snapshot):
        if mismatch.kind is Kind.BALANCE:
            continue  # the journal does not track balances
        foreign = mismatch.kind in (Kind.ORDER, Kind.ALGO_ORDER) and not is_ours(mismatch.key)
        findings.append(Finding.of(mismatch, "reported (not ours)" if foreign else "reported", ours=not foreign))
    differences = check.differences if check is not None else ()
    report = Report(clock.now_ms(), "aegis reconcile --once", snapshot.as_of_ms, _counts(snapshot), tuple(findings), pnl=differences)
    out = report.to_builtins()
    if check is not None:
        out["pnl_symbols"] = check.lines()
    out["source"] = f"the journal {settings.journal.path}" if journal is not None else "an empty view (no journal)"
    out["balances"] = {b.asset: format(b.wallet_balance, "f") for b in snapshot.balances if b.wallet_balance}
    return out


async def _pnl(rest: BinanceRest, journal: Journal, settings: Settings) -> PnlCheck:
    """Read-only: since the journal's first fill; trades the journal lacks are differences here
    (a running engine adopts them into its journal instead)."""
    fills = await journal.fills()
    since = fills[0].time_ms if fills else rest.server_clock.now_ms()
    return await check_pnl(rest, fills, since, rest.server_clock.now_ms(), settings.reconcile.pnl_tolerance)


# The view is stamped just after the store's initial fence and before any snapshot, so it is written
# and compared (a stamp at or after the snapshot's would mark it as news the snapshot cannot know).
_VIEW_MS = 1


async def _journal_view(journal: Journal, view: StateStore, snapshot: AccountSnapshot) -> None:
    """Our open orders and the net position per symbol, as the journal knows them. The journal
    has amounts, not Binance's entry prices: a position's entry price is taken from the exchange,
    so only amounts are compared."""
    for record in await journal.in_flight():
        events = await journal.events(record.client_id)
        acked = next((e for e in events if e.kind == "acked"), None)
        if acked is None or record.algo:
            continue
        r = record.request
        await view.apply_order(
            Order(
                record.symbol, int(acked.body.get("order_id", 0)), record.client_id, Side(r["side"]),
                OrderType(r["type"]), OrderStatus.NEW, Decimal(r["price"] or 0), Decimal(r["quantity"] or 0),
                ZERO, ZERO, None, bool(r["reduce_only"]), 0,
            ),
            at_ms=_VIEW_MS,
        )  # fmt: skip
    net: dict[str, Decimal] = defaultdict(Decimal)
    for fill in await journal.fills():
        net[fill.symbol] += fill.side.sign * fill.quantity
    entry = {p.symbol: p.entry_price for p in snapshot.positions}
    positions = [Position(s, amount, entry.get(s, ZERO)) for s, amount in net.items()]
    await view.apply_account(positions=positions, at_ms=_VIEW_MS)


def _counts(snapshot: Any) -> dict[str, int]:
    return {
        "positions": sum(1 for p in snapshot.positions if not p.is_flat),
        "open_orders": len(snapshot.open_orders),
        "open_algo_orders": len(snapshot.open_algo_orders),
    }


def _print(report: dict[str, Any], *, as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, highlight=False)
    console.print(f"reconcile against {report.get('source', 'the exchange')}: {'clean' if report.get('clean') else 'MISMATCH'}")
    findings = report.get("findings") or []
    if findings:
        table = Table("kind", "item", "engine", "exchange", "action")
        for f in findings:
            table.add_row(str(f["kind"]), str(f["key"]), str(f["engine"] or "-"), str(f["exchange"] or "-"), str(f["action"]))
        console.print(table)
    for line in report.get("pnl_symbols") or []:
        console.print(f"pnl {line}")
    for line in report.get("pnl") or []:
        console.print(f"pnl MISMATCH {line}")
    if report.get("halted"):
        console.print(f"trading halted: {report['halted']}")

