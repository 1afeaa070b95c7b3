"""The write-ahead journal: what the engine meant to send is durable before it is sent.

SQLite in WAL mode, append-only: an intent row is written once, before its request leaves; every
later fact about it (acknowledgement, rejection, unknown outcome, resolution, fill, close) is a new
event row. After a crash, the intents with no terminal event are exactly the orders whose fate the
engine must learn from the exchange (by client order id) before it sends anything new.

Durability: ``normal`` (WAL, synchronous=NORMAL) survives a process crash or kill -9, which is what
the order path needs; ``full`` also survives a power loss, at the price of an fsync per write.

Where the work runs (bench/bench_tick_to_trade.py measured it): a ``normal`` write is an append to
the WAL with no fsync, ~30 us on the loop, while handing it to a worker thread and back costs ~150 us
of CPU and as much latency (queue, wake-up, GIL hand-over, loop wake-up), four times per order. So
in ``normal`` mode writes run inline on the loop, on their own connection whose automatic checkpoint
is off (a checkpoint copies the WAL into the database and can take milliseconds): every
``CHECKPOINT_EVERY`` writes a passive checkpoint runs on the worker thread, which never blocks a
writer. ``full`` writes (an fsync each, milliseconds) and every read stay on the worker thread.

Per order that leaves two commits: the intent (before the send), then "acked" with "closed" of a
final answer in one transaction (``record_events``). The same close reported again (the store tells
the ledger of the closed order the order manager journaled) is no write: ``record_close`` finds it
among the closes this process committed, or else reads the order's closed rows before writing.

``Journal`` is the protocol the engine uses (everything it calls, the composition root and
``aegis reconcile --once`` included); ``SqliteJournal`` is this file's implementation and
``open_journal`` the one place one is chosen. A PostgreSQL journal for several processes sharing
one ledger is another file implementing ``Journal``, plus a branch in ``open_journal``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import msgspec
from loguru import logger

from aegis.domain import Fill, Order, Side

__all__ = [
    "TERMINAL", "Durability", "EventRow", "IntentRecord", "Journal", "JournalEvent", "SqliteJournal", "close_detail",
]

Durability = Literal["normal", "full"]
EventRow = tuple[str, int, dict[str, Any] | None]  # (kind, at_ms, body) of one event
T = TypeVar("T")

# Event kinds after which an intent is settled: nothing more is sent for it.
TERMINAL = frozenset({"rejected", "closed", "dry", "abandoned", "refused"})
# Inline writes (durability "normal") checkpoint the WAL on the worker thread this often.
CHECKPOINT_EVERY = 1000
_INSERT_EVENT = "INSERT INTO events (client_id, at_ms, kind, terminal, body) VALUES (?,?,?,?,?)"
# Closes this process committed, remembered per client id so the ledger's repeat costs no read.
CLOSES_REMEMBERED = 4096

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    client_id   TEXT PRIMARY KEY,
    created_ms  INTEGER NOT NULL,
    strategy    TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    leg         TEXT NOT NULL,
    algo        INTEGER NOT NULL,
    request     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id   TEXT NOT NULL,
    at_ms       INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    terminal    INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_client ON events (client_id, terminal);
CREATE TABLE IF NOT EXISTS fills (
    symbol      TEXT NOT NULL,
    order_id    INTEGER NOT NULL,
    trade_id    INTEGER NOT NULL,
    client_id   TEXT NOT NULL,
    side        TEXT NOT NULL,
    price       TEXT NOT NULL,
    quantity    TEXT NOT NULL,
    commission  TEXT NOT NULL,
    commission_asset TEXT NOT NULL,
    realized_pnl TEXT NOT NULL,
    maker       INTEGER NOT NULL,
    time_ms     INTEGER NOT NULL,
    PRIMARY KEY (symbol, order_id, trade_id)
);
CREATE TABLE IF NOT EXISTS reports (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL
);
"""


class IntentRecord(msgspec.Struct, frozen=True):
    """One order the engine meant to send, as written before it was sent."""

    client_id: str
    created_ms: int
    strategy: str
    symbol: str
    leg: str  # "entry", "stop", "take_profit", "exit", "flatten"...
    algo: bool  # a conditional order (POST /fapi/v1/algoOrder, clientAlgoId)
    request: dict[str, Any]  # the sized order, wire strings for every number


class JournalEvent(msgspec.Struct, frozen=True):
    client_id: str
    at_ms: int
    kind: str
    body: dict[str, Any]


class Journal(Protocol):
    """What the order manager, the reconciler, the reports and the metrics need from a journal."""

    on_write: Callable[[float], None] | None
    """Called with the seconds of each write transaction (the journal-write latency metric)."""

    async def record_intent(self, intent: IntentRecord) -> bool: ...

    async def record_event(self, client_id: str, kind: str, at_ms: int, body: dict[str, Any] | None = None) -> None: ...

    async def record_events(self, client_id: str, events: Sequence[EventRow]) -> None:
        """Several events of one order, all durable or none (one commit: "acked" and "closed" of a
        final answer)."""
        ...

    async def record_close(self, client_id: str, at_ms: int, body: dict[str, Any]) -> bool:
        """A "closed" event unless one journaled already holds every key and value of ``body`` (the
        same close reported twice: the REST answer, then the store's notice to the ledger); True if
        written. The check must cost no commit: it runs on every order."""
        ...

    async def record_fill(self, fill: Fill) -> bool: ...

    async def record_report(self, kind: str, at_ms: int, body: dict[str, Any]) -> None: ...

    async def intent(self, client_id: str) -> IntentRecord | None: ...

    async def intents(self, *, algo: bool | None = None) -> list[IntentRecord]: ...

    async def in_flight(self) -> list[IntentRecord]: ...

    async def events(self, client_id: str) -> list[JournalEvent]: ...

    async def fills(self, since_ms: int = 0) -> list[Fill]: ...

    async def reports(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


async def open_journal(path: Path | str, durability: Durability = "normal") -> Journal:
    """The configured journal, open (SQLite today: the one place a second implementation plugs in)."""
    return await SqliteJournal.open(path, durability)


class SqliteJournal:
    """The journal in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path | str, durability: Durability = "normal") -> None:
        self.path = Path(path)
        self.durability = durability
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aegis-journal")
        self._conn: sqlite3.Connection | None = None  # reads and checkpoints: the worker thread
        self._wconn: sqlite3.Connection | None = None  # writes: the loop ("normal") or the worker ("full")
        self.inline = durability == "normal"
        self.writes = 0
        self.write_seconds_total = 0.0
        self.on_write: Callable[[float], None] | None = None  # seconds per write (metrics; journal thread)
        self._closes: dict[str, list[str]] = {}  # client id -> closed bodies committed (oldest first out)

    @classmethod
    async def open(cls, path: Path | str, durability: Durability = "normal") -> SqliteJournal:
        journal = cls(path, durability)
        await journal._run(journal._connect)
        return journal

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._disconnect)
        self._executor.shutdown(wait=True)

    # --- writing ---------------------------------------------------------------------------

    async def record_intent(self, intent: IntentRecord) -> bool:
        """Durably write ``intent`` before its request is sent; False if this client id was written
        before (a replay after a crash: its fate is learned from the exchange, it is not re-sent)."""
        row = (
            intent.client_id,
            intent.created_ms,
            intent.strategy,
            intent.symbol,
            intent.leg,
            int(intent.algo),
            _dumps(intent.request),
        )
        return bool(await self._write(lambda c: c.execute("INSERT OR IGNORE INTO intents VALUES (?,?,?,?,?,?,?)", row).rowcount, single=True))

    async def record_event(self, client_id: str, kind: str, at_ms: int, body: dict[str, Any] | None = None) -> None:
        await self.record_events(client_id, [(kind, at_ms, body)])

    async def record_events(self, client_id: str, events: Sequence[EventRow]) -> None:
        """The events in order, in one transaction: a commit (~50 us on the loop) per order saved."""
        rows = [(client_id, at_ms, kind, int(kind in TERMINAL), _dumps(body)) for kind, at_ms, body in events]
        if not rows:
            return  # nothing to write (as executemany of no rows did before the single INSERT)
        values = [v for row in rows for v in row]
        # One INSERT of every row: one statement is one transaction, committed when it ends.
        await self._write(lambda c: c.execute(_INSERT_EVENT + ",(?,?,?,?,?)" * (len(rows) - 1), values), single=True)
        for row in rows:
            if row[2] == "closed":
                self._remember_close(client_id, row[4])

    async def record_close(self, client_id: str, at_ms: int, body: dict[str, Any]) -> bool:
        text = _dumps(body)
        if text in self._closes.get(client_id, ()):  # the very close this process committed: no read
            return False
        if self.inline:
            written = self._close_now(client_id, at_ms, text)
        else:
            written = await self._run(lambda: self._close_now(client_id, at_ms, text))
        if written:
            self._remember_close(client_id, text)
        return written

    def _close_now(self, client_id: str, at_ms: int, text: str) -> bool:
        """Read, then write only if needed, on the writing connection: the one writer, nothing between."""
        wanted = json.loads(text).items()
        sql = "SELECT body FROM events WHERE client_id=? AND terminal=1 AND kind='closed'"
        if any(wanted <= json.loads(r[0]).items() for r in self._writer().execute(sql, (client_id,)).fetchall()):
            return False
        row = (client_id, at_ms, "closed", 1, text)
        self._write_now(lambda c: c.execute(_INSERT_EVENT, row), single=True)
        return True

    def _remember_close(self, client_id: str, text: str) -> None:
        """Only after the commit, on the loop: a remembered close is always in the database."""
        self._closes.setdefault(client_id, []).append(text)
        if len(self._closes) > CLOSES_REMEMBERED:
            del self._closes[next(iter(self._closes))]

    async def record_fill(self, fill: Fill) -> bool:
        """A fill once per (symbol, order id, trade id); False if it was already journaled."""
        row = (
            fill.symbol,
            fill.order_id,
            fill.trade_id,
            fill.client_order_id,
            fill.side.value,
            format(fill.price, "f"),
            format(fill.quantity, "f"),
            format(fill.commission, "f"),
            fill.commission_asset,
            format(fill.realized_pnl, "f"),
            int(fill.maker),
            fill.time_ms,
        )
        inserted = await self._write(
            lambda c: c.execute("INSERT OR IGNORE INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", row).rowcount
        )
        if not inserted and fill.commission_asset:  # the fee-bearing copy refines a TRADE_LITE row
            await self._write(
                lambda c: c.execute(
                    "UPDATE fills SET commission=?, commission_asset=?, realized_pnl=? "
                    "WHERE symbol=? AND order_id=? AND trade_id=? AND commission_asset=''",
                    (row[7], row[8], row[9], row[0], row[1], row[2]),
                )
            )
        return bool(inserted)

    async def record_report(self, kind: str, at_ms: int, body: dict[str, Any]) -> None:
        row = (at_ms, kind, _dumps(body))
        await self._write(lambda c: c.execute("INSERT INTO reports (at_ms, kind, body) VALUES (?,?,?)", row))

    # --- reading ---------------------------------------------------------------------------

    async def intent(self, client_id: str) -> IntentRecord | None:
        rows = await self._run(
            lambda: self._db().execute("SELECT * FROM intents WHERE client_id=?", (client_id,)).fetchall()
        )
        return _intent(rows[0]) if rows else None

    async def intents(self, *, algo: bool | None = None) -> list[IntentRecord]:
        """Every intent journaled (only conditional ones with ``algo=True``), oldest first."""
        sql = "SELECT * FROM intents" + ("" if algo is None else " WHERE algo=?") + " ORDER BY created_ms"
        params: tuple[Any, ...] = () if algo is None else (int(algo),)
        return [_intent(r) for r in await self._run(lambda: self._db().execute(sql, params).fetchall())]

    async def in_flight(self) -> list[IntentRecord]:
        """Intents without a terminal event, oldest first: what a restart must resolve first."""
        sql = (
            "SELECT * FROM intents i WHERE NOT EXISTS "
            "(SELECT 1 FROM events e WHERE e.client_id = i.client_id AND e.terminal = 1) ORDER BY created_ms"
        )
        return [_intent(r) for r in await self._run(lambda: self._db().execute(sql).fetchall())]

    async def events(self, client_id: str) -> list[JournalEvent]:
        sql = "SELECT client_id, at_ms, kind, body FROM events WHERE client_id=? ORDER BY seq"
        rows = await self._run(lambda: self._db().execute(sql, (client_id,)).fetchall())
        return [JournalEvent(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    async def fills(self, since_ms: int = 0) -> list[Fill]:
        sql = "SELECT * FROM fills WHERE time_ms >= ? ORDER BY time_ms, trade_id"
        return [_fill(r) for r in await self._run(lambda: self._db().execute(sql, (since_ms,)).fetchall())]

    async def reports(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = "SELECT at_ms, kind, body FROM reports" + (" WHERE kind=?" if kind else "") + " ORDER BY seq DESC LIMIT ?"
        params: tuple[Any, ...] = (kind, limit) if kind else (limit,)
        rows = await self._run(lambda: self._db().execute(sql, params).fetchall())
        return [{"at_ms": r[0], "kind": r[1], **json.loads(r[2])} for r in rows]

    # --- the worker thread -----------------------------------------------------------------

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.durability == 'full' else 'NORMAL'}")
        conn.executescript(_SCHEMA)
        self._conn = conn
        writer = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        writer.execute(f"PRAGMA synchronous={'FULL' if self.durability == 'full' else 'NORMAL'}")
        if self.inline:
            writer.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run on the worker thread
        self._wconn = writer

    def _disconnect(self) -> None:
        for conn in (self._wconn, self._conn):
            if conn is not None:
                conn.close()
        self._conn = self._wconn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("journal is closed")
        return self._conn

    def _writer(self) -> sqlite3.Connection:
        if self._wconn is None:
            raise RuntimeError("journal is closed")
        return self._wconn

    async def _write(self, statement: Callable[[sqlite3.Connection], T], *, single: bool = False) -> T:
        if self.inline:
            return self._write_now(statement, single=single)
        return await self._run(lambda: self._write_now(statement, single=single))

    def _write_now(self, statement: Callable[[sqlite3.Connection], T], *, single: bool = False) -> T:
        """``statement`` in its own transaction, on the writing connection, committed on return.

        ``single``: it is one SQL statement, which the autocommit connection runs as its own
        transaction (the same commit, same durability, without BEGIN and COMMIT round trips)."""
        started = time.perf_counter()
        conn = self._writer()
        if single:
            result = statement(conn)
        else:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = statement(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        took = time.perf_counter() - started
        self.writes += 1
        self.write_seconds_total += took
        if self.on_write is not None:
            self.on_write(took)
        if self.inline and self.writes % CHECKPOINT_EVERY == 0:
            self._executor.submit(self._checkpoint)
        return result

    def _checkpoint(self) -> None:
        """Copy the WAL into the database without blocking writers (worker thread)."""
        try:
            if self._conn is not None:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            logger.warning("journal checkpoint failed: {}", exc)

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)


def close_detail(order: Order) -> dict[str, Any]:
    """What a "closed" event says of an order: the same for every writer, so a repeat is recognised."""
    return {"status": order.status, "executed_qty": format(order.executed_qty, "f"), "avg_price": format(order.avg_price, "f")}


_ENCODER = msgspec.json.Encoder(enc_hook=str, order="sorted")  # ~6x json.dumps(sort_keys=True, default=str)


def _dumps(body: dict[str, Any] | None) -> str:
    return _ENCODER.encode(body or {}).decode()


def _intent(row: Iterable[Any]) -> IntentRecord:
    client_id, created_ms, strategy, symbol, leg, algo, request = row
    return IntentRecord(client_id, created_ms, strategy, symbol, leg, bool(algo), json.loads(request))


def _fill(row: Iterable[Any]) -> Fill:
    symbol, order_id, trade_id, client_id, side, price, qty, fee, fee_asset, pnl, maker, time_ms = row
    return Fill(
        symbol, order_id, client_id, trade_id, Side(side), Decimal(price), Decimal(qty),
        Decimal(fee), fee_asset, Decimal(pnl), bool(maker), time_ms,
    )  # fmt: skip
