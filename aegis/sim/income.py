"""GET /fapi/v1/income: every change the exchange booked on a wallet, as Binance lists it.

One row per booking: REALIZED_PNL and COMMISSION per fill (with its tradeId), FUNDING_FEE per
symbol at each funding boundary, INSURANCE_CLEAR for a liquidation's clearance fee and for a
negative wallet the insurance fund clears, and TRANSFER for the starting balance: a real
account is funded by a transfer from spot, which Binance lists (the docs' own example row is a
TRANSFER), so the rows of an account always sum to its wallet balance, per asset.

Query rules [docs: Get Income History, weight 30]: optional symbol and incomeType; startTime
and endTime inclusive; neither sent = the last 7 days; only the last three months are kept;
limit default 100, max 1000; ``page`` (from 1) pages through the window. UNCONFIRMED and chosen
here: rows oldest first, a start without an end runs to now, an end without a start reaches back
three months, startTime > endTime is -1023.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aegis.sim import errors, params
from aegis.sim.accounts import Account
from aegis.sim.params import Params
from aegis.sim.wire import f8

DAY_MS = 24 * 3600 * 1000
RECENT_MS = 7 * DAY_MS
KEPT_MS = 90 * DAY_MS
TRAN_ID_BASE = 9_689_322_392
INCOME_TYPES = frozenset(
    {
        "TRANSFER", "WELCOME_BONUS", "REALIZED_PNL", "FUNDING_FEE", "COMMISSION", "INSURANCE_CLEAR",
        "REFERRAL_KICKBACK", "COMMISSION_REBATE", "API_REBATE", "CONTEST_REWARD",
        "CROSS_COLLATERAL_TRANSFER", "OPTIONS_PREMIUM_FEE", "OPTIONS_SETTLE_PROFIT", "INTERNAL_TRANSFER",
        "AUTO_EXCHANGE", "DELIVERED_SETTELMENT", "COIN_SWAP_DEPOSIT", "COIN_SWAP_WITHDRAW",
        "POSITION_LIMIT_INCREASE_FEE", "STRATEGY_UMFUTURES_TRANSFER", "FEE_RETURN", "BFUSD_REWARD",
        "SPECIAL_FUNDING_FEE",
    }
)


@dataclass(frozen=True, slots=True)
class Income:
    symbol: str
    income_type: str
    income: Decimal
    asset: str
    time: int
    tran_id: int
    trade_id: int | None = None

    def row(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "incomeType": self.income_type,
            "income": f8(self.income),
            "asset": self.asset,
            "info": self.income_type,
            "time": self.time,
            "tranId": self.tran_id,
            "tradeId": "" if self.trade_id is None else str(self.trade_id),
        }


def _time(row: Income) -> int:
    return row.time


class IncomeLedger:
    """Books income rows on accounts and answers the income query."""

    def __init__(self) -> None:
        self._tran_ids = itertools.count(TRAN_ID_BASE)

    def book(
        self, acct: Account, income_type: str, amount: Decimal, asset: str, now: int, symbol: str = "", trade_id: int | None = None
    ) -> None:
        """Record one wallet change (nothing for a zero amount, as Binance lists none)."""
        if amount:
            if acct.income and now < acct.income[-1].time:
                acct.income_in_time_order = False
            acct.income.append(Income(symbol, income_type, amount, asset, now, next(self._tran_ids), trade_id))

    def query(self, acct: Account, p: Params, now: int, symbol: str | None) -> list[dict[str, Any]]:
        income_type = p.get("incomeType") or None
        if income_type is not None and income_type not in INCOME_TYPES:
            raise errors.invalid_param("incomeType")
        start, end = params.integer(p, "startTime"), params.integer(p, "endTime")
        if start is not None and end is not None and start > end:
            raise errors.bad(-1023, "Start time is greater than end time.")
        if start is None and end is None:
            start = now - RECENT_MS
        lo = max(now - KEPT_MS, start if start is not None else now - KEPT_MS)
        hi = end if end is not None else now
        limit = params.limit(p, 100, 1000)
        page = params.integer(p, "page") or 1
        # Rows in time order (no clock jump back yet): those before ``lo`` are skipped unread, not
        # filtered out one by one (a month's run books thousands). The sort makes the order exact.
        booked = acct.income
        if acct.income_in_time_order:
            booked = booked[bisect_left(booked, lo, key=_time) :]
        rows = sorted(
            (
                r
                for r in booked
                if lo <= r.time <= hi
                and (symbol is None or r.symbol == symbol)
                and (income_type is None or r.income_type == income_type)
            ),
            key=lambda r: (r.time, r.tran_id),
        )
        return [r.row() for r in rows[(page - 1) * limit : page * limit]]
