"""The market feed's single writer: writes reach the store in the order they were decided, and a
stream candle with nothing ahead of it is written before the stream callback returns."""

from __future__ import annotations

import asyncio

from aegis.domain import Candle
from aegis.market.writer import StoreWriter, Write
from aegis.state import StateStore
from tests.factories import MINUTE_MS, candle

SYMBOL = "BTCUSDT"


def _rig() -> tuple[StateStore, StoreWriter, list[tuple[str, int, int]]]:
    store = StateStore()
    seen: list[tuple[str, int, int]] = []

    def stored(symbol: str, candles: tuple[Candle, ...], added: int) -> None:
        seen.append((symbol, candles[-1].open_time_ms, added))

    return store, StoreWriter(store, stored, lambda _symbol: None), seen


async def test_a_stream_candle_with_nothing_ahead_is_stored_before_the_call_returns() -> None:
    store, writer, seen = _rig()
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0)  # the writer waits for work
    writer.put_or_write(Write(SYMBOL, (candle(SYMBOL, 0),)))
    assert [c.open_time_ms for c in store.candles(SYMBOL)] == [0] and seen == [(SYMBOL, 0, 1)]
    task.cancel()


async def test_a_stream_candle_waits_behind_queued_writes_and_the_order_holds() -> None:
    store, writer, seen = _rig()
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0)
    writer.put(Write(SYMBOL, tuple(candle(SYMBOL, i * MINUTE_MS) for i in range(3))))  # a REST batch
    writer.put_or_write(Write(SYMBOL, (candle(SYMBOL, 3 * MINUTE_MS),)))
    assert store.candles(SYMBOL) == () and seen == []
    await writer.join()
    assert [c.open_time_ms for c in store.candles(SYMBOL)] == [i * MINUTE_MS for i in range(4)]
    assert seen == [(SYMBOL, 2 * MINUTE_MS, 3), (SYMBOL, 3 * MINUTE_MS, 1)]
    task.cancel()


async def test_without_a_running_writer_nothing_is_written_behind_its_back() -> None:
    store, writer, seen = _rig()
    writer.put_or_write(Write(SYMBOL, (candle(SYMBOL, 0),)))
    assert store.candles(SYMBOL) == () and seen == []
