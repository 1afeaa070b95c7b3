"""User data stream payloads shaped like the recorded ones (tests/fixtures/binance/ws_seq_*)."""

from __future__ import annotations

from typing import Any

import orjson

from aegis.binance.parse import parse_user_event
from aegis.domain import UserEvent

SYMBOL = "BTCUSDT"
T0 = 1731954087444


def otu(
    order_id: int,
    client_id: str,
    *,
    x: str,
    status: str,
    filled: str = "0",
    last: str = "0",
    trade_id: int = 0,
    t: int = T0,
    qty: str = "0.002",
    price: str = "91739.90",
    commission: str = "0",
    side: str = "BUY",
) -> dict[str, Any]:
    return {
        "e": "ORDER_TRADE_UPDATE",
        "T": t,
        "E": t,
        "o": {
            "s": SYMBOL, "c": client_id, "S": side, "o": "LIMIT", "f": "GTC", "q": qty, "p": price,
            "ap": price if filled != "0" else "0", "sp": "0", "x": x, "X": status, "i": order_id,
            "l": last, "z": filled, "L": price if last != "0" else "0", "n": commission, "N": "USDT",
            "T": t, "t": trade_id, "b": "0", "a": "0", "m": False, "R": False, "wt": "CONTRACT_PRICE",
            "ot": "LIMIT", "ps": "BOTH", "cp": False, "rp": "0", "pP": False, "si": 0, "ss": 0,
            "V": "NONE", "pm": "NONE", "gtd": 0,
        },
    }  # fmt: skip


def trade_lite(
    order_id: int, client_id: str, *, last: str, trade_id: int, t: int = T0, side: str = "BUY"
) -> dict[str, Any]:
    return {
        "e": "TRADE_LITE", "E": t, "T": t, "s": SYMBOL, "q": last, "p": "91739.90", "m": False,
        "c": client_id, "S": side, "L": "91739.90", "l": last, "t": trade_id, "i": order_id,
    }  # fmt: skip


def account_update(amount: str, wallet: str, *, t: int = T0, entry: str = "91739.9") -> dict[str, Any]:
    return {
        "e": "ACCOUNT_UPDATE", "T": t, "E": t,
        "a": {
            "B": [{"a": "USDT", "wb": wallet, "cw": wallet, "bc": "0"}],
            "P": [{"s": SYMBOL, "pa": amount, "ep": entry, "cr": "0", "up": "0", "mt": "cross",
                   "iw": "0", "ps": "BOTH", "ma": "USDT", "bep": entry}],
            "m": "ORDER",
        },
    }  # fmt: skip


def algo_update(algo_id: int, status: str, *, t: int = T0) -> dict[str, Any]:
    return {
        "e": "ALGO_UPDATE", "T": t, "E": t,
        "o": {"caid": f"algo-{algo_id}", "aid": algo_id, "at": "CONDITIONAL", "o": "STOP_MARKET",
              "s": SYMBOL, "S": "SELL", "ps": "BOTH", "f": "GTC", "q": "0.002", "X": status,
              "ai": "", "ap": "0", "aq": "0", "act": "0", "tp": "90000", "p": "0", "V": "EXPIRE_MAKER",
              "wt": "CONTRACT_PRICE", "pm": "NONE", "cp": False, "pP": False, "R": True, "tt": 0, "gtd": 0, "rm": ""},
    }  # fmt: skip


def event(payload: dict[str, Any]) -> UserEvent:
    parsed = parse_user_event(orjson.dumps(payload))
    assert parsed is not None
    return parsed


def open_payloads(
    order_id: int = 482255808281, client_id: str = "android_MLA5BSDBdSD12WPlEyMh"
) -> list[dict[str, Any]]:
    """Binance's real arrival order for an immediately filled order: the fill comes before the NEW."""
    return [
        trade_lite(order_id, client_id, last="0.002", trade_id=5612428004),
        otu(order_id, client_id, x="NEW", status="NEW"),
        account_update("0.002", "642.76097079"),
        otu(
            order_id, client_id, x="TRADE", status="FILLED", filled="0.002", last="0.002",
            trade_id=5612428004, commission="0.09173990",
        ),
    ]  # fmt: skip


def open_sequence(
    order_id: int = 482255808281, client_id: str = "android_MLA5BSDBdSD12WPlEyMh"
) -> list[UserEvent]:
    """``open_payloads`` parsed, as the stream hands them to the applier."""
    return [event(p) for p in open_payloads(order_id, client_id)]
