"""GET /fapi/v1/income: the rows sum exactly to what the exchange booked on the wallet, per type."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from aegis.sim.config import SimConfig
from aegis.sim.server import SimServer
from tests.sim.rest_helpers import Raw

EIGHT_H = 8 * 3600_000
START = 1_700_000_000_000 - 1_700_000_000_000 % EIGHT_H + EIGHT_H - 30 * 60_000  # 30 min before a funding


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(start_ms=START)) as s:
        yield s


async def _all_income(raw: Raw, **filters: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        status, batch, headers = await raw.signed("GET", "/fapi/v1/income", startTime=START - 1, limit=3, page=page, **filters)
        assert status == 200 and int(headers["X-MBX-USED-WEIGHT-1M"]) >= 30
        rows += batch
        if len(batch) < 3:
            return rows
        page += 1


async def _wallet(raw: Raw) -> Decimal:
    _, balances, _ = await raw.signed("GET", "/fapi/v3/balance")
    return Decimal(next(b for b in balances if b["asset"] == "USDT")["balance"])


async def test_income_rows_sum_to_the_wallet_change_per_type(server: SimServer, raw: Raw) -> None:
    for side, qty in (("BUY", "0.030"), ("SELL", "0.010")):
        assert (await raw.order(symbol="BTCUSDT", side=side, type="MARKET", quantity=qty))[0] == 200
    await server.set_clock(jump_ms=40 * 60_000)  # across the funding boundary with 0.020 long
    assert (await raw.order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.020"))[0] == 200
    rows = await _all_income(raw)
    by_type: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        assert set(row) == {"symbol", "incomeType", "income", "asset", "info", "time", "tranId", "tradeId"}
        assert row["asset"] == "USDT" and "E" not in row["income"].upper()
        by_type[row["incomeType"]] += Decimal(row["income"])
    _, trades, _ = await raw.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")
    assert by_type["TRANSFER"] == Decimal("10000")
    assert by_type["REALIZED_PNL"] == sum(Decimal(t["realizedPnl"]) for t in trades) != 0
    assert by_type["COMMISSION"] == -sum(Decimal(t["commission"]) for t in trades) < 0
    assert by_type["FUNDING_FEE"] < 0, "a long pays a positive funding rate"
    wallet = await _wallet(raw)
    assert sum(by_type.values()) == wallet
    assert wallet - Decimal("10000") == by_type["REALIZED_PNL"] + by_type["COMMISSION"] + by_type["FUNDING_FEE"]
    commission_trades = sorted(r["tradeId"] for r in rows if r["incomeType"] == "COMMISSION")
    assert commission_trades == sorted(str(t["id"]) for t in trades)
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    funding = [r for r in rows if r["incomeType"] == "FUNDING_FEE"]
    assert len(funding) == 1 and funding[0]["symbol"] == "BTCUSDT" and funding[0]["time"] % EIGHT_H == 0
    assert await _all_income(raw, incomeType="FUNDING_FEE") == funding
    assert await _all_income(raw, symbol="ETHUSDT") == []


async def test_income_query_rules(server: SimServer, raw: Raw) -> None:
    _, recent, _ = await raw.signed("GET", "/fapi/v1/income")
    assert [r["incomeType"] for r in recent] == ["TRANSFER"]  # the last 7 days by default
    await server.set_clock(jump_ms=8 * 24 * 3600_000)
    assert (await raw.signed("GET", "/fapi/v1/income"))[1] == [], "older than 7 days without a start"
    assert len((await raw.signed("GET", "/fapi/v1/income", startTime=START))[1]) == 1
    _, body, _ = await raw.signed("GET", "/fapi/v1/income", incomeType="PROFIT")
    assert body == {"code": -1130, "msg": "Data sent for parameter 'incomeType' is not valid."}
    _, body, _ = await raw.signed("GET", "/fapi/v1/income", startTime=START + 1, endTime=START)
    assert body == {"code": -1023, "msg": "Start time is greater than end time."}
    assert (await raw.signed("GET", "/fapi/v1/income", symbol="NOPE"))[1]["code"] == -1121
    assert (await raw.signed("GET", "/fapi/v1/income", page="1.0"))[1]["code"] == -1100
