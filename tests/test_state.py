"""The state store: bounded candle history, open-order book, and no torn reads."""

from __future__ import annotations

import asyncio
import itertools
import random
from decimal import Decimal

import pytest

from aegis.domain import OrderStatus
from aegis.state import AccountSnapshot, StateStore
from tests.factories import MINUTE_MS, balance, candle, order, position


async def test_candle_history_is_bounded_and_ordered() -> None:
    store = StateStore(max_candles=3)
    added = await store.add_candles("BTCUSDT", [candle("BTCUSDT", i * MINUTE_MS) for i in range(5)])
    assert added == 5
    assert [c.open_time_ms for c in store.candles("BTCUSDT")] == [2 * MINUTE_MS, 3 * MINUTE_MS, 4 * MINUTE_MS]
    summary = store.snapshot().candles["BTCUSDT"]
    assert (summary.count, summary.first_open_ms, summary.last_open_ms) == (3, 2 * MINUTE_MS, 4 * MINUTE_MS)


async def test_duplicate_and_older_candles_are_refused() -> None:
    store = StateStore()
    await store.add_candles("ETHUSDT", [candle("ETHUSDT", MINUTE_MS)])
    assert await store.add_candles("ETHUSDT", [candle("ETHUSDT", MINUTE_MS), candle("ETHUSDT", 0)]) == 0
    assert len(store.candles("ETHUSDT")) == 1


async def test_closed_orders_leave_the_open_order_book() -> None:
    store = StateStore()
    await store.apply_order(order("a"))
    await store.apply_order(order("b"))
    await store.apply_order(order("a", OrderStatus.FILLED))
    assert set(store.snapshot().open_orders) == {"b"}


async def test_memory_of_closed_orders_is_bounded() -> None:
    """A long run closes orders forever: what the store remembers about them (orders, client ids,
    each key's last write time) stays within its memory, while open orders are all kept."""
    store = StateStore(memory=50)
    for i in range(1_500):
        await store.apply_order(order(f"c{i}", order_id=i))
        await store.apply_order(order(f"c{i}", OrderStatus.FILLED, order_id=i))
    await store.apply_order(order("open", order_id=10_000))
    assert len(store._orders) <= 50 and len(store._by_client) <= 50
    assert len(store._fresh) <= 2 * 50 + 1_000
    assert store.order("c1499") is not None and store.order("c0") is None
    assert set(store.snapshot().open_orders) == {"open"}


async def test_flat_positions_are_dropped() -> None:
    store = StateStore()
    await store.apply_account(positions=[position("BTCUSDT", "0.010")], at_ms=1)
    await store.apply_account(positions=[position("BTCUSDT", "0")], at_ms=2)
    assert dict(store.snapshot().positions) == {}


async def test_snapshot_cannot_be_mutated_and_does_not_change_under_the_reader() -> None:
    store = StateStore()
    await store.apply_account(balances=[balance("USDT", "100")], at_ms=1)
    snap = store.snapshot()
    with pytest.raises(TypeError):
        snap.balances["USDT"] = balance("USDT", "1")  # type: ignore[index]
    await store.apply_account(balances=[balance("USDT", "200")], at_ms=2)
    assert snap.balances["USDT"].wallet_balance == Decimal("100")
    assert store.snapshot().balances["USDT"].wallet_balance == Decimal("200")


async def test_concurrent_writers_and_readers_never_see_a_torn_state() -> None:
    """Each write sets a balance and three positions to the same value; a reader must see them agree."""
    store = StateStore()
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    torn: list[str] = []
    clock = itertools.count(1)

    async def writer(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(300):
            value = str(rnd.randint(1, 10_000))
            at = next(clock)
            if rnd.random() < 0.5:
                await store.apply_account(
                    balances=[balance("USDT", value)], positions=[position(s, value) for s in symbols], at_ms=at
                )
            else:
                snapshot = AccountSnapshot(
                    at, tuple(position(s, value) for s in symbols), (order(f"o{value}"),), (), (balance("USDT", value),)
                )
                await store.adopt_snapshot(snapshot)
            await asyncio.sleep(0)

    async def reader() -> None:
        for _ in range(1000):
            snap = store.snapshot()
            if snap.balances:
                wallet = snap.balances["USDT"].wallet_balance
                amounts = {p.amount for p in snap.positions.values()}
                if amounts != {wallet}:
                    torn.append(f"balance {wallet} vs positions {amounts}")
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(i) for i in range(4)), *(reader() for _ in range(4)))
    assert torn == []
    assert store.snapshot().version > 0



async def test_closed_orders_are_forgotten_a_memory_after_their_last_write() -> None:
    """A quiet engine stops growing after ``memory_ms`` of exchange time; open orders stay however old."""
    hour = 3_600_000
    store = StateStore(memory=10_000, memory_ms=24 * hour)
    await store.apply_order(order("resting", order_id=10_000), at_ms=hour)
    for i in range(200):  # one order an hour, for 200 hours
        await store.apply_order(order(f"c{i}", order_id=i), at_ms=i * hour)
        await store.apply_order(order(f"c{i}", OrderStatus.FILLED, order_id=i), at_ms=i * hour + 1)
    assert len(store._orders) <= 26 and len(store._by_client) <= 26
    assert len(store._fresh) <= 26
    assert store.order("c199") is not None and store.order("c100") is None
    assert store.order("resting") is not None and store.order_by_id("BTCUSDT", 10_000) is not None
