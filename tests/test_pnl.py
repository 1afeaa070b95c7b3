"""PnL reconciliation: the journal's realized PnL and fees against the exchange's income history,
trade by trade, through the engine's operator pass and through ``aegis reconcile --once --pnl``."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

from aegis.config import Settings
from aegis.domain import Fill, Income, Side
from aegis.exitcodes import EXIT_MISMATCH, EXIT_OK
from aegis.reconcile.once import reconcile_once
from aegis.reconcile.pnl import compare
from aegis.trading.journal import SqliteJournal
from tests.harness import DEMO_API_KEY, exchange_sleep, until
from tests.rigs import EngineRig, engine_rig

# Positions found by the pass are adopted, so the PnL check is what these tests look at.
ADOPT = {"reconcile": {"on_position": "adopt"}}


def _fill(trade_id: int, pnl: str, fee: str, symbol: str = "BTCUSDT") -> Fill:
    return Fill(symbol, 1, "", trade_id, Side.SELL, Decimal(1), Decimal(1), Decimal(fee), "USDT", Decimal(pnl), False, 5)


def _income(trade_id: int, kind: str, amount: str, symbol: str = "BTCUSDT") -> Income:
    return Income(symbol, kind, Decimal(amount), "USDT", 5, trade_id * 10 + len(kind), str(trade_id))


def test_amounts_are_compared_per_symbol_to_the_tolerance_and_lone_trades_are_named() -> None:
    fills = [_fill(1, "2.50", "0.10"), _fill(2, "-1.00", "0.05")]
    income = [_income(1, "REALIZED_PNL", "2.50"), _income(1, "COMMISSION", "-0.10"),
              _income(2, "REALIZED_PNL", "-1.004"), _income(2, "COMMISSION", "-0.05")]  # fmt: skip
    assert compare(fills, income, Decimal("0.01"), 0, 10).differences == ()
    assert compare(fills, income, Decimal("0.001"), 0, 10).differences  # 0.004 apart: beyond a tenth of a cent
    lonely = compare([*fills, _fill(3, "0", "0")], [*income, _income(4, "COMMISSION", "0")], Decimal("0.01"), 0, 10)
    (line,) = lonely.differences
    assert "trades the exchange never booked: 3" in line and "trades missing from the journal: 4" in line


async def test_the_operator_pass_matches_pnl_with_a_trade_the_stream_never_delivered() -> None:
    async with engine_rig(settings=ADOPT) as rig:
        await rig.admin.trade(DEMO_API_KEY, "BTCUSDT", "BUY", "0.010")
        await exchange_sleep(rig.sim, 180)  # the price moves
        await rig.admin.trade(DEMO_API_KEY, "BTCUSDT", "SELL", "0.004")  # realizes PnL, pays fees
        await rig.admin.trade(DEMO_API_KEY, "BTCUSDT", "SELL", "0.003", events=False)  # lost on the way
        await exchange_sleep(rig.sim, 15)  # older than the window's settle margin
        report = await _post_reconcile(rig)
        assert report["pnl"] == [], report
        assert rig.engine.pnl.last is not None
        btc = rig.engine.pnl.last.symbols["BTCUSDT"]
        assert btc.exchange_fees < 0 and btc.exchange_realized != 0
        assert (btc.journal_realized, btc.journal_fees) == (btc.exchange_realized, btc.exchange_fees)
        assert any("matches the journal" in line for line in report["pnl_symbols"])
        assert rig.engine.journal is not None
        assert len(await rig.engine.journal.fills()) == 3


async def test_reconcile_once_pnl_reports_a_journal_trade_the_exchange_never_booked() -> None:
    async with engine_rig(settings=ADOPT) as rig:
        await rig.admin.trade(DEMO_API_KEY, "BTCUSDT", "BUY", "0.010")
        journal = rig.engine.journal
        assert journal is not None
        await until(lambda: _has_fills(journal), 30.0, "the fill in the journal")
        await exchange_sleep(rig.sim, 15)
        assert await rig.stop() == 0  # the engine has stopped: --once reads the journal itself
        settings = _once_settings(rig, journal.path)
        assert await _once(settings) == (EXIT_OK, [])
        extra = await SqliteJournal.open(journal.path)
        first = (await extra.fills())[0]
        await extra.record_fill(Fill("BTCUSDT", 42, "", 999_999, Side.BUY, Decimal(1), Decimal(1), Decimal("0.5"),
                                     "USDT", Decimal(0), False, first.time_ms + 1))  # fmt: skip
        await extra.close()
        code, differences = await _once(settings)
        assert code == EXIT_MISMATCH and "trades the exchange never booked: 999999" in differences[0]


async def _has_fills(journal: SqliteJournal) -> bool:
    return bool(await journal.fills())


async def _post_reconcile(rig: EngineRig) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(rig.ops_url + "/reconcile") as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


def _once_settings(rig: EngineRig, journal_path: object) -> Settings:
    return Settings(profile="sim", symbols=["BTCUSDT"], sim={"url": rig.sim.rest_url}, journal={"path": str(journal_path)})


async def _once(settings: Settings) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = await reconcile_once(settings, as_json=True, pnl=True, out=out)
    report = json.loads(out.getvalue())
    assert report["source"].startswith("the journal")
    return code, list(report["pnl"])
