"""The journal's own contract: one commit for an order's final answer, and the same close reported
twice (the REST answer, then the ledger) is one row and no commit, while recovery still sees it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from aegis.domain import Order, OrderStatus, OrderType, Side
from aegis.trading.journal import Durability, IntentRecord, SqliteJournal, close_detail

CID = "t.BTCUSDT.1.e"


def _expired() -> Order:
    return Order(
        "BTCUSDT", 7, CID, Side.BUY, OrderType.LIMIT, OrderStatus.EXPIRED, Decimal("100000.0"), Decimal("0.002"),
        Decimal(0), Decimal(0), None, False, 1,
    )  # fmt: skip


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_a_final_answer_is_one_commit_and_its_repeat_none(tmp_path: Path, durability: Durability) -> None:
    journal = await SqliteJournal.open(tmp_path / "j.sqlite", durability)
    try:
        await journal.record_intent(IntentRecord(CID, 1, "t", "BTCUSDT", "entry", False, {}))
        assert [r.client_id for r in await journal.in_flight()] == [CID]
        before = journal.writes
        await journal.record_events(CID, [("acked", 2, {"order_id": 7}), ("closed", 2, close_detail(_expired()))])
        assert journal.writes == before + 1
        assert await journal.in_flight() == []
        assert not await journal.record_close(CID, 3, close_detail(_expired()))  # the ledger's copy
        assert journal.writes == before + 1
        assert [e.kind for e in await journal.events(CID)] == ["acked", "closed"]
        assert (await journal.events(CID))[1].body == {"status": "EXPIRED", "executed_qty": "0", "avg_price": "0"}
    finally:
        await journal.close()
    restarted = await SqliteJournal.open(tmp_path / "j.sqlite", durability)  # nothing in memory: it reads
    try:
        assert not await restarted.record_close(CID, 4, close_detail(_expired())) and restarted.writes == 0
        assert await restarted.in_flight() == []
    finally:
        await restarted.close()


async def test_a_close_with_detail_the_journal_lacks_is_written(tmp_path: Path) -> None:
    journal = await SqliteJournal.open(tmp_path / "j.sqlite")
    try:
        await journal.record_event(CID, "closed", 1, {"status": "CANCELED"})  # an algo cancel: no detail
        detail = {"status": "CANCELED", "executed_qty": "0.001", "avg_price": "100000"}
        assert await journal.record_close(CID, 2, detail)
        assert not await journal.record_close(CID, 3, {"status": "CANCELED"})
        await journal.record_event("other", "closed", 1, {"recovered": True, **detail})  # recovery's close
        assert not await journal.record_close("other", 2, detail)
        assert [e.kind for e in await journal.events(CID)] == ["closed", "closed"]
    finally:
        await journal.close()
