r"""Request parameters as Binance reads them: presence, enums, ids, numbers, with Binance's codes.

Every endpoint's handler reads its parameters through these helpers, so one parameter is parsed
the same way wherever it appears (an ``orderId`` on query, cancel and userTrades alike).

Numbers are read as Binance reads them, not as Python would: a decimal parameter must match
``^([0-9]{1,20})(\.[0-9]{1,20})?$`` and an integer parameter ``^[0-9]{1,20}$`` (ASCII digits
only), or the request gets -1100 "Illegal characters found in parameter '<name>'; legal range is
'<pattern>'." Binance's own text, recorded on spot (decimal and integer forms) and templated in
the futures error-code list [real][docs]; the futures wording for the decimal pattern is
UNCONFIRMED, so the stricter spot pattern is used. So ``1E-2``, `` 0.010``, ``+0.010``, ``0.0_10``,
``NaN`` and non-ASCII digits are all -1100, where ``Decimal()``/``int()`` would take them.

A name sent twice in the query string, or twice in the form body, is -1101 "Duplicate values for
a parameter detected." [docs: futures error codes]. A name sent once in the query and once in the
body is not a duplicate: Binance's futures general info says the query string's value is used
[docs], and no client sends both, so the simulator follows the documentation there.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar
from urllib.parse import parse_qsl

from aegis.sim import errors
from aegis.sim.symbols import ZERO

Params = dict[str, str]
_T = TypeVar("_T")

CONDITIONAL_TYPES = frozenset(
    {"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"}
)
ALGO_TYPES = frozenset({"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"})
TIFS = frozenset({"GTC", "IOC", "FOK", "GTX", "GTD"})
_CLIENT_ID = re.compile(r"[\.A-Z\:/a-z0-9_-]{1,36}")  # fullmatch: '$' would let a trailing newline in
_RNG = random.Random()

DECIMAL_RANGE = "^([0-9]{1,20})(\\.[0-9]{1,20})?$"
INTEGER_RANGE = "^[0-9]{1,20}$"
_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?")
_INTEGER = re.compile(r"[0-9]{1,20}")
_INT64_MAX = 2**63 - 1
# Every numeric parameter of the endpoints the simulator serves (and of the order parameters it
# does not act on, such as activationPrice): checked on every request, read or not.
DECIMAL_PARAMS = frozenset(
    {"quantity", "price", "stopPrice", "triggerPrice", "activationPrice", "activatePrice", "callbackRate"}
)
INTEGER_PARAMS = frozenset(
    {
        "orderId",
        "algoId",
        "fromId",
        "limit",
        "page",
        "startTime",
        "endTime",
        "recvWindow",
        "timestamp",
        "goodTillDate",
        "leverage",
        "countdownTime",
    }
)


def illegal(name: str, legal_range: str) -> errors.BinanceError:
    return errors.bad(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal_range}'.")


def _split(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True)``; without '%' or '+' (what signed clients send)
    nothing is decoded, so splitting is all it does."""
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True)
    pairs = []
    for field in text.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((name, value))
    return pairs


def _pairs(text: str) -> Params:
    out: Params = {}
    for name, value in _split(text):
        if name in out:
            raise errors.bad(-1101, "Duplicate values for a parameter detected.")
        out[name] = value
    return out


def from_request(query: str, body: str) -> Params:
    """The parameters of one request: -1101 for a name repeated within the query or within the
    body; a name in both takes the query's value (see the module docstring)."""
    params = _pairs(body) if body else {}
    if query:
        params.update(_pairs(query))
    return params


def check_numbers(params: Params) -> None:
    """-1100 for any numeric parameter whose text Binance would not parse (empty ones are left to
    the mandatory checks of the endpoint)."""
    for name, text in params.items():
        if not text:
            continue
        if name in DECIMAL_PARAMS:
            if not _DECIMAL.fullmatch(text):
                raise illegal(name, DECIMAL_RANGE)
        elif name in INTEGER_PARAMS and (not _INTEGER.fullmatch(text) or int(text) > _INT64_MAX):
            raise illegal(name, INTEGER_RANGE)


def boolean(params: Params, name: str) -> bool:
    """``"true"``/``"false"`` (any case); absent or empty is false; anything else -1130."""
    v = params.get(name)
    if v is None or v == "":
        return False
    low = v.lower()
    if low not in ("true", "false"):
        raise errors.invalid_param(name)
    return low == "true"


def side_and_type(params: Params) -> tuple[str, str]:
    """``side`` and ``type`` of a new order or algo order, with Binance's codes when missing or bad."""
    side = params.get("side") or ""
    if not side:
        raise errors.mandatory("side")
    if side not in ("BUY", "SELL"):
        raise errors.bad(-1117, "Invalid side.")
    otype = params.get("type") or ""
    if not otype:
        raise errors.mandatory("type")
    return side, otype


def one_way(params: Params) -> None:
    """The simulator's accounts are in one-way mode: positionSide may only be BOTH."""
    if params.get("positionSide", "BOTH") not in ("BOTH", ""):
        raise errors.bad(-4061, "Order's position side does not match user's setting.")


def integer(params: Params, name: str) -> int | None:
    """An optional integer parameter; -1100 for anything but 1 to 20 ASCII digits (a long)."""
    text = params.get(name)
    if text is None or text == "":
        return None
    if not _INTEGER.fullmatch(text):
        raise illegal(name, INTEGER_RANGE)
    value = int(text)
    if value > _INT64_MAX:
        raise illegal(name, INTEGER_RANGE)
    return value


def required_integer(params: Params, name: str) -> int:
    """A mandatory integer parameter: -1102 when absent."""
    value = integer(params, name)
    if value is None:
        raise errors.mandatory(name)
    return value


def decimal(params: Params, name: str) -> Decimal:
    """A mandatory decimal parameter: -1102 when missing or empty, -1100 unless it is plain digits
    with an optional fraction (no sign, exponent, blank, underscore or non-ASCII digit)."""
    text = params.get(name)
    if text is None or text == "":
        raise errors.mandatory(name)
    if not _DECIMAL.fullmatch(text):
        raise illegal(name, DECIMAL_RANGE)
    return Decimal(text)


def client_id(params: Params, name: str) -> str:
    """A client order id as sent (-4015 unless it matches Binance's pattern), or a generated one."""
    cid = params.get(name)
    if cid is None or cid == "":
        return f"{_RNG.getrandbits(88):022x}"  # 22 characters, like Binance's generated ids
    if not _CLIENT_ID.fullmatch(cid):
        raise errors.bad(-4015, "Client order id is not valid.")
    return cid


def good_till(params: Params, now: int) -> int:
    """GTD: goodTillDate (ms, second precision) at least 600 s ahead, as Binance requires."""
    gtd = required_integer(params, "goodTillDate")
    if gtd <= now + 600_000:
        raise errors.invalid_param("goodTillDate")
    return gtd - gtd % 1000


def lookup(
    params: Params, id_name: str, client_id_name: str, by_id: dict[int, _T], by_client_id: dict[str, int]
) -> _T | None:
    """An order (or algo order) named by its numeric id or else by its client id; None if unknown.

    -1102 on the id parameter when neither is sent."""
    order_id = integer(params, id_name)
    cid = params.get(client_id_name)
    if order_id is None and not cid:
        raise errors.mandatory(id_name)
    if order_id is not None:
        return by_id.get(order_id)
    found = by_client_id.get(cid or "")
    return by_id.get(found) if found is not None else None


def limit(params: Params, default: int = 500, maximum: int = 1500) -> int:
    """A ``limit`` clamped to ``maximum`` as Binance clamps it; below 1 is -1130."""
    n = integer(params, "limit")
    if n is None:
        return default
    if n < 1:
        raise errors.invalid_param("limit")
    return min(n, maximum)


DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


def depth_limit(params: Params) -> int:
    """GET /fapi/v1/depth: one of Binance's fixed levels."""
    n = integer(params, "limit")
    if n is None:
        return 500
    if n not in DEPTH_LIMITS:
        raise errors.invalid_param("limit")
    return n


@dataclass(frozen=True, slots=True)
class OrderDraft:
    """A parsed, not yet validated, new order (POST /fapi/v1/order)."""

    side: str
    type: str
    tif: str
    qty: Decimal
    price: Decimal
    reduce_only: bool
    client_id: str
    resp_type: str

    @property
    def market(self) -> bool:
        return self.type == "MARKET"


def new_order(params: Params, *, trading: bool) -> OrderDraft:
    """Parameters of a new order, with Binance's codes for what is missing or malformed."""
    side, otype = side_and_type(params)
    if not trading:
        raise errors.bad(-1122, "Invalid symbol status.")
    if otype in CONDITIONAL_TYPES:
        raise errors.use_algo_endpoint()
    if otype not in ("LIMIT", "MARKET"):
        raise errors.bad(-1116, "Invalid orderType.")
    one_way(params)
    resp_type = params.get("newOrderRespType") or "ACK"
    if resp_type not in ("ACK", "RESULT"):
        raise errors.bad(-1136, "Invalid newOrderRespType.")
    reduce_only = boolean(params, "reduceOnly")
    if boolean(params, "closePosition"):
        raise errors.not_required("closePosition")
    cid = client_id(params, "newClientOrderId")
    market = otype == "MARKET"
    tif = "GTC"
    if not market:
        tif = params.get("timeInForce") or ""
        if not tif:
            raise errors.mandatory("timeInForce")
        if tif not in TIFS:
            raise errors.bad(-1115, "Invalid timeInForce.")
    qty = decimal(params, "quantity")
    if market and params.get("price"):
        raise errors.not_required("price")
    price = ZERO if market else decimal(params, "price")
    return OrderDraft(side, otype, tif, qty, price, reduce_only, cid, resp_type)
