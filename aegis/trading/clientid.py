"""Client order ids derived from the intent: the same intent always gets the same id.

``ae.<digest>.<leg><seq>``: the digest hashes (strategy, symbol, cause), so a retry, a replay after
a crash or a re-send after a confirmed loss carries the id of the first attempt, and Binance's
-4116 ("duplicated clientOrderId") proves an earlier attempt landed. The ``ae.`` prefix tells our
orders from the ones we did not place (apps use android_/ios_/web_, liquidations autoclose-...).
Valid for Binance's ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$``.
"""

from __future__ import annotations

import base64
import hashlib
import re

from aegis.binance.constants import CLIENT_ORDER_ID_PATTERN

__all__ = ["LEGS", "PREFIX", "client_id", "is_ours", "leg_of"]

PREFIX = "ae."
LEGS = {"entry": "e", "exit": "x", "stop": "s", "take_profit": "t", "flatten": "f", "replace": "r"}
_CODES = {code: leg for leg, code in LEGS.items()}
_VALID = re.compile(CLIENT_ORDER_ID_PATTERN)


def client_id(strategy: str, symbol: str, cause: str, leg: str = "entry", seq: int = 0) -> str:
    digest = hashlib.blake2b(f"{strategy}|{symbol}|{cause}".encode(), digest_size=10).digest()
    text = base64.b32encode(digest).decode().lower().rstrip("=")[:14]
    cid = f"{PREFIX}{text}.{LEGS[leg]}{seq}"
    if not _VALID.match(cid):  # pragma: no cover - guaranteed by construction
        raise ValueError(f"client order id {cid!r} is not valid for Binance")
    return cid


def is_ours(cid: str) -> bool:
    """Placed by aegis (as opposed to an app, a liquidation, another bot)."""
    return cid.startswith(PREFIX)


def leg_of(cid: str) -> str | None:
    if not is_ours(cid):
        return None
    tail = cid.rsplit(".", 1)[-1]
    return _CODES.get(tail[:1])
