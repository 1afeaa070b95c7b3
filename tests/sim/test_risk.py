"""Funding every 8 hours and cross-margin liquidation, on the exchange clock."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aegis.sim.candles import MINUTE_MS
from aegis.sim.config import DEMO_ACCOUNT, AccountSpec, SimConfig
from aegis.sim.server import SimServer
from tests.sim.rest_helpers import Raw

EIGHT_H = 8 * 3600_000
SHORT = AccountSpec("short-key", "short-secret", Decimal("10000"))


def user_events(server: SimServer) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    server.sim.bus.on_user_event(lambda key, e: events.append((key, e)))
    return events


async def test_funding_is_paid_by_longs_to_shorts_at_each_8h_boundary() -> None:
    boundary = 1_795_000_000_000 - 1_795_000_000_000 % EIGHT_H + EIGHT_H
    config = SimConfig(start_ms=boundary - 5 * MINUTE_MS, accounts=(DEMO_ACCOUNT, SHORT))
    async with SimServer(config) as server:
        long_, short = Raw(server), Raw(server, SHORT.api_key, SHORT.secret)
        events = user_events(server)
        try:
            await long_.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.100")
            await short.order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.100")
            wallets = {
                k: server.sim.exchange.account(k).balances["USDT"]
                for k in (DEMO_ACCOUNT.api_key, SHORT.api_key)
            }
            events.clear()
            await server.set_clock(jump_ms=10 * MINUTE_MS)
            mark = server.sim.market.price("BTCUSDT", boundary)
            fee = (Decimal("0.100") * mark * Decimal("0.0001")).quantize(Decimal("1e-8"))
            funding = {
                k: e["a"] for k, e in events if e["e"] == "ACCOUNT_UPDATE" and e["a"]["m"] == "FUNDING_FEE"
            }
            assert funding[DEMO_ACCOUNT.api_key]["B"][0]["bc"] == f"{-fee}"
            assert funding[SHORT.api_key]["B"][0]["bc"] == f"{fee}" and funding[SHORT.api_key]["P"] == []
            assert next(e["T"] for _, e in events if e["e"] == "ACCOUNT_UPDATE") == boundary
            assert (
                server.sim.exchange.account(DEMO_ACCOUNT.api_key).balances["USDT"]
                == wallets[DEMO_ACCOUNT.api_key] - fee
            )
            events.clear()
            await server.set_clock(jump_ms=3 * EIGHT_H)  # one payment per boundary passed
            assert sum(1 for k, e in events if e["e"] == "ACCOUNT_UPDATE" and k == SHORT.api_key) == 3
        finally:
            await long_.close()
            await short.close()


async def test_an_overleveraged_short_is_liquidated_when_the_path_falls_through_maintenance() -> None:
    poor = AccountSpec("poor-key", "poor-secret", Decimal("100"))
    async with SimServer(SimConfig(start_ms=1_795_000_010_000, accounts=(poor,))) as server:
        raw = Raw(server, poor.api_key, poor.secret)
        events = user_events(server)
        sim = server.sim
        try:
            await raw.signed("POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=125)
            status, opened, _ = await raw.order(
                symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.090", newOrderRespType="RESULT"
            )
            assert status == 200, opened
            acct = sim.exchange.account(poor.api_key)
            entry, wallet = Decimal(opened["avgPrice"]), acct.balances["USDT"]
            qty = Decimal("0.090")
            # maintenance 0.4% of notional: liquidated once wallet - qty*(p - entry) <= 0.004*qty*p
            threshold = (wallet + qty * entry) / (qty * Decimal("1.004"))
            now = sim.clock.now_ms()
            bar = now - now % MINUTE_MS
            first = next(
                i
                for i in range(1, 3000)
                if sim.market.candle("BTCUSDT", bar + i * MINUTE_MS).high >= threshold
            )
            await server.set_clock(jump_ms=bar + first * MINUTE_MS - now)  # up to the bar that breaks it
            assert acct.amount("BTCUSDT") == -qty  # still alive
            await server.set_clock(jump_ms=MINUTE_MS)
            assert acct.amount("BTCUSDT") == 0
            liquidation = [
                e["o"] for _, e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "CALCULATED"
            ]
            assert len(liquidation) == 1 and liquidation[0]["c"].startswith("autoclose-")
            assert liquidation[0]["S"] == "BUY" and Decimal(liquidation[0]["L"]) >= threshold
            assert acct.balances["USDT"] >= 0
            _, risk, _ = await raw.signed("GET", "/fapi/v3/positionRisk")
            assert risk == []
        finally:
            await raw.close()
