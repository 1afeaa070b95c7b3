"""Account read endpoints: v2/v3 account, v2/v3 positionRisk, v2/v3 balance, leverageBracket."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any

from aegis.sim.accounts import MARGIN_ASSETS, Account
from aegis.sim.exchange import Exchange
from aegis.sim.margin import AssetView, PositionView, active_symbols
from aegis.sim.symbols import ZERO, SymbolSpec
from aegis.sim.wire import f8, fixed, norm

Payload = dict[str, Any]


def _amt(v: PositionView, spec: SymbolSpec) -> str:
    return fixed(v.amount, spec.quantity_precision)


def _totals(assets: list[AssetView]) -> Payload:
    usdt = next(a for a in assets if a.asset == "USDT")
    im = sum((a.position_margin + a.order_margin for a in assets), ZERO)
    return {
        "totalInitialMargin": f8(im),
        "totalMaintMargin": f8(sum((a.maint_margin for a in assets), ZERO)),
        "totalWalletBalance": f8(usdt.wallet),
        "totalUnrealizedProfit": f8(usdt.unrealized),
        "totalMarginBalance": f8(usdt.margin_balance),
        "totalPositionInitialMargin": f8(sum((a.position_margin for a in assets), ZERO)),
        "totalOpenOrderInitialMargin": f8(sum((a.order_margin for a in assets), ZERO)),
        "totalCrossWalletBalance": f8(usdt.wallet),
        "totalCrossUnPnl": f8(usdt.unrealized),
        "availableBalance": f8(usdt.available),
        "maxWithdrawAmount": f8(usdt.max_withdraw),
    }


def _asset_row(a: AssetView, *, v2: bool) -> Payload:
    row: Payload = {
        "asset": a.asset,
        "walletBalance": f8(a.wallet),
        "unrealizedProfit": f8(a.unrealized),
        "marginBalance": f8(a.margin_balance),
        "maintMargin": f8(a.maint_margin),
        "initialMargin": f8(a.position_margin + a.order_margin),
        "positionInitialMargin": f8(a.position_margin),
        "openOrderInitialMargin": f8(a.order_margin),
        "crossWalletBalance": f8(a.wallet),
        "crossUnPnl": f8(a.unrealized),
        "availableBalance": f8(a.available),
        "maxWithdrawAmount": f8(a.max_withdraw),
    }
    if v2:
        row["marginAvailable"] = True
    row["updateTime"] = a.update_time
    return row


def account_v3(ex: Exchange, acct: Account) -> Payload:
    """GET /fapi/v3/account: totals, assets, positions only where there is a position or open order."""
    assets = [ex.margin.asset_view(acct, a) for a in MARGIN_ASSETS]
    body = _totals(assets)
    body["assets"] = [_asset_row(a, v2=False) for a in assets]
    positions = []
    for sym in active_symbols(acct):
        v, spec = ex.margin.position_view(acct, sym), ex.info.symbols[sym]
        positions.append(
            {
                "symbol": sym,
                "positionSide": "BOTH",
                "positionAmt": _amt(v, spec),
                "unrealizedProfit": f8(v.unrealized),
                "isolatedMargin": "0",
                "notional": f8(v.notional),
                "isolatedWallet": "0",
                "initialMargin": f8(v.initial_margin + v.open_order_margin),
                "maintMargin": f8(v.maint_margin),
                "updateTime": v.update_time,
            }
        )
    body["positions"] = positions
    return body


def account_v2(ex: Exchange, acct: Account) -> Payload:
    """GET /fapi/v2/account: config fields and every symbol's position row (leverage included)."""
    assets = [ex.margin.asset_view(acct, a) for a in MARGIN_ASSETS]
    body: Payload = {
        "feeTier": 0,
        "feeBurn": False,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "updateTime": 0,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
    }
    body.update(_totals(assets))
    body["assets"] = [_asset_row(a, v2=True) for a in assets]
    active = set(active_symbols(acct))
    rows = []
    for sym, spec in ex.info.symbols.items():
        if sym in active:
            v = ex.margin.position_view(acct, sym)
            rows.append(_v2_position(v, spec))
        else:
            rows.append(_v2_empty(ex, acct, spec))
    body["positions"] = rows
    return body


def _v2_position(v: PositionView, spec: SymbolSpec) -> Payload:
    return {
        "symbol": v.symbol,
        "initialMargin": f8(v.initial_margin + v.open_order_margin),
        "maintMargin": f8(v.maint_margin),
        "unrealizedProfit": f8(v.unrealized),
        "positionInitialMargin": f8(v.initial_margin),
        "openOrderInitialMargin": f8(v.open_order_margin),
        "leverage": str(v.leverage),
        "isolated": False,
        "entryPrice": norm(v.entry),
        "breakEvenPrice": norm(v.break_even),
        "maxNotional": format(v.max_notional, "f"),
        "positionSide": "BOTH",
        "positionAmt": _amt(v, spec),
        "notional": f8(v.notional),
        "isolatedWallet": "0",
        "updateTime": v.update_time,
        "bidNotional": norm(v.bid_notional),
        "askNotional": norm(v.ask_notional),
    }


def _v2_empty(ex: Exchange, acct: Account, spec: SymbolSpec) -> Payload:
    """A flat symbol without the cost of pricing it (300+ rows per v2 account call)."""
    lev = ex.margin.leverage_of(acct, spec.symbol)
    cap = ex.margin.max_notional(spec, lev)
    zero = f8(ZERO)
    return {
        "symbol": spec.symbol,
        "initialMargin": zero,
        "maintMargin": zero,
        "unrealizedProfit": zero,
        "positionInitialMargin": zero,
        "openOrderInitialMargin": zero,
        "leverage": str(lev),
        "isolated": False,
        "entryPrice": "0.0",
        "breakEvenPrice": "0.0",
        "maxNotional": format(cap, "f"),
        "positionSide": "BOTH",
        "positionAmt": fixed(ZERO, spec.quantity_precision),
        "notional": "0",
        "isolatedWallet": "0",
        "updateTime": 0,
        "bidNotional": "0",
        "askNotional": "0",
    }


def position_risk(ex: Exchange, acct: Account, symbol: str | None, *, v3: bool) -> list[Payload]:
    """v3: only symbols with a position or open orders; v2: every symbol (or the one asked for)."""
    if symbol:
        syms = [symbol]
    elif v3:
        syms = active_symbols(acct)
    else:
        syms = list(ex.info.symbols)
    if v3:
        active = set(active_symbols(acct))
        syms = [s for s in syms if s in active]
    return [_risk_row(ex.margin.position_view(acct, s), ex.info.symbols[s], v3=v3) for s in syms]


def _risk_row(v: PositionView, spec: SymbolSpec, *, v3: bool) -> Payload:
    row: Payload = {
        "symbol": v.symbol,
        "positionSide": "BOTH",
        "positionAmt": _amt(v, spec),
        "entryPrice": norm(v.entry),
        "breakEvenPrice": norm(v.break_even),
        "markPrice": f8(v.mark),
        "unRealizedProfit": f8(v.unrealized),
        "liquidationPrice": f8(v.liquidation) if v.liquidation else "0",
        "isolatedMargin": "0",
        "notional": f8(v.notional),
        "marginAsset": spec.margin_asset,
        "isolatedWallet": "0",
        "initialMargin": f8(v.initial_margin + v.open_order_margin),
        "maintMargin": f8(v.maint_margin),
        "positionInitialMargin": f8(v.initial_margin),
        "openOrderInitialMargin": norm(v.open_order_margin),
        "adl": 2 if v.amount else 0,
        "bidNotional": norm(v.bid_notional),
        "askNotional": norm(v.ask_notional),
        "updateTime": v.update_time,
    }
    if not v3:
        row = {
            "symbol": v.symbol,
            "positionAmt": row["positionAmt"],
            "entryPrice": row["entryPrice"],
            "breakEvenPrice": row["breakEvenPrice"],
            "markPrice": row["markPrice"],
            "unRealizedProfit": row["unRealizedProfit"],
            "liquidationPrice": row["liquidationPrice"],
            "leverage": str(v.leverage),
            "maxNotionalValue": format(v.max_notional, "f"),
            "marginType": "cross",
            "isolatedMargin": "0.00000000",
            "isAutoAddMargin": "false",
            "positionSide": "BOTH",
            "notional": row["notional"],
            "isolatedWallet": "0",
            "updateTime": v.update_time,
        }
    return row


def balances(ex: Exchange, acct: Account) -> list[Payload]:
    """GET /fapi/v2|v3/balance."""
    out = []
    for asset in MARGIN_ASSETS:
        a = ex.margin.asset_view(acct, asset)
        out.append(
            {
                "accountAlias": "SgsR",
                "asset": asset,
                "balance": f8(a.wallet),
                "crossWalletBalance": f8(a.wallet),
                "crossUnPnl": f8(a.unrealized),
                "availableBalance": f8(a.available),
                "maxWithdrawAmount": f8(a.max_withdraw),
                "marginAvailable": True,
                "updateTime": a.update_time,
            }
        )
    return out


def leverage_brackets(ex: Exchange, symbol: str | None) -> Payload | list[Payload]:
    """GET /fapi/v1/leverageBracket: an object for one symbol, a list for all (as the docs show)."""

    def one(spec: SymbolSpec) -> Payload:
        return {
            "symbol": spec.symbol,
            "notionalCoef": 1.0,
            "brackets": [
                {
                    "bracket": b.bracket,
                    "initialLeverage": b.leverage,
                    "notionalCap": int(b.cap),
                    "notionalFloor": int(b.floor),
                    "maintMarginRatio": float(b.mmr),
                    "cum": float(b.cum),
                }
                for b in spec.brackets
            ],
        }

    if symbol:
        return one(ex.spec(symbol))
    return [one(s) for s in ex.info.symbols.values()]


def premium_index(ex: Exchange, spec: SymbolSpec, now: int) -> Payload:
    mark = ex.market.price(spec.symbol, now)
    eight_h = 8 * 3600 * 1000
    pp = spec.price_precision
    return {
        "symbol": spec.symbol,
        "markPrice": fixed(mark, max(pp, 8)),
        "indexPrice": fixed(mark, max(pp, 8)),
        "estimatedSettlePrice": fixed(mark, max(pp, 8)),
        "lastFundingRate": fixed(ex.config.funding_rate, 8),
        "interestRate": "0.00010000",
        "nextFundingTime": now - now % eight_h + eight_h,
        "time": now,
    }


def ticker_price(ex: Exchange, spec: SymbolSpec, now: int) -> Payload:
    return {
        "symbol": spec.symbol,
        "price": fixed(ex.market.price(spec.symbol, now), spec.price_precision),
        "time": now,
    }


def book_ticker(ex: Exchange, spec: SymbolSpec, now: int) -> Payload:
    """Best bid/ask: the last price is the bid, one tick above is the ask (a one-tick spread)."""
    bid, ask, qty = _touch(ex, spec, now)
    pp, qp = spec.price_precision, spec.quantity_precision
    return {
        "symbol": spec.symbol,
        "bidPrice": fixed(bid, pp),
        "bidQty": fixed(qty, qp),
        "askPrice": fixed(ask, pp),
        "askQty": fixed(qty, qp),
        "time": now,
        "lastUpdateId": now,
    }


def _touch(ex: Exchange, spec: SymbolSpec, now: int) -> tuple[Decimal, Decimal, Decimal]:
    price = ex.market.price(spec.symbol, now)
    tick = spec.tick or Decimal(1).scaleb(-spec.price_precision)
    step = spec.step or Decimal(1).scaleb(-spec.quantity_precision)
    bar = ex.market.candle(spec.symbol, now)
    qty = max(step, (bar.volume / 20).quantize(step, rounding=ROUND_DOWN))
    return price, price + tick, qty


def depth(ex: Exchange, spec: SymbolSpec, limit: int, now: int) -> Payload:
    """A synthetic order book around the last price: ``limit`` levels a tick apart per side."""
    bid, ask, qty = _touch(ex, spec, now)
    tick = spec.tick or Decimal(1).scaleb(-spec.price_precision)
    pp, qp = spec.price_precision, spec.quantity_precision
    bids = [
        [fixed(bid - tick * i, pp), fixed(qty * (1 + i % 7), qp)] for i in range(limit) if bid - tick * i > 0
    ]
    asks = [[fixed(ask + tick * i, pp), fixed(qty * (1 + i % 5), qp)] for i in range(limit)]
    return {"lastUpdateId": now, "E": now, "T": now, "bids": bids, "asks": asks}
