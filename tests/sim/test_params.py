"""Numbers and parameters are read as Binance reads them: the probes of issue 12, item 4, over HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.sim import params
from aegis.sim.config import DEMO_API_KEY, SimConfig
from aegis.sim.errors import BinanceError
from aegis.sim.server import SimServer
from tests.sim.rest_helpers import Raw, sign

START = 1_700_000_000_000
DECIMAL_MSG = "Illegal characters found in parameter '{}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'."
INTEGER_MSG = "Illegal characters found in parameter '{}'; legal range is '^[0-9]{{1,20}}$'."
BINANCE_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(start_ms=START, rate_limits=False)) as s:
        yield s


def _illegal(name: str, integer: bool = False) -> dict[str, Any]:
    return {"code": -1100, "msg": (INTEGER_MSG if integer else DECIMAL_MSG).format(name)}


async def _market(raw: Raw, quantity: str) -> tuple[int, Any]:
    status, body, _ = await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=quantity)
    return status, body


@pytest.mark.parametrize(
    "quantity", ["1E-2", "1e-2", " 0.010", "0.010 ", "+0.010", "-0.010", "0.0_10", "٠٫٠١٠", "0.０１", "NaN", "abc", "Infinity", "1.", ".5", "0.010\n", "0x10"]
)
async def test_a_quantity_python_would_parse_is_illegal_characters(raw: Raw, quantity: str) -> None:
    assert await _market(raw, quantity) == (400, _illegal("quantity"))


async def test_plain_decimals_pass_the_parser_and_meet_the_filters(raw: Raw) -> None:
    status, body = await _market(raw, "0.010")
    assert status == 200 and body["origQty"] == "0.010"
    assert (await _market(raw, "000.0100"))[0] == 200  # leading and trailing zeros are plain digits
    assert (await _market(raw, "0"))[1]["code"] == -4003
    assert (await _market(raw, "0.0001"))[1]["code"] == -4004
    assert (await _market(raw, ""))[1] == {
        "code": -1102,
        "msg": "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
    }


async def test_every_decimal_parameter_is_checked_read_or_not(raw: Raw) -> None:
    _, body, _ = await raw.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="6e4")
    assert body == _illegal("price")
    _, body, _ = await raw.order(
        symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", activationPrice="1E5"
    )
    assert body == _illegal("activationPrice"), "a parameter the order does not use is still parsed"
    _, body, _ = await raw.signed(
        "POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT", side="SELL",
        type="STOP_MARKET", quantity="0.01", triggerPrice="1e4",
    )
    assert body == _illegal("triggerPrice")


@pytest.mark.parametrize("value", ["1E3", " 12", "12 ", "+12", "-12", "1_2", "١٢", "12.0", "99999999999999999999"])
async def test_integers_are_ascii_digits_within_a_long(raw: Raw, value: str) -> None:
    _, body, _ = await raw.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=value)
    assert body == _illegal("orderId", integer=True)
    _, body, _ = await raw.public("/fapi/v1/klines", symbol="BTCUSDT", interval="1m", limit=value)
    assert body == _illegal("limit", integer=True)
    _, body, _ = await raw.public("/fapi/v1/klines", symbol="BTCUSDT", interval="1m", startTime=value)
    assert body == _illegal("startTime", integer=True)
    _, body, _ = await raw.signed("GET", "/fapi/v3/balance", recvWindow=value)
    assert body == _illegal("recvWindow", integer=True)
    _, body, _ = await raw.signed("POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=value)
    assert body == _illegal("leverage", integer=True)


async def test_a_timestamp_is_an_integer_too(raw: Raw, server: SimServer) -> None:
    async with raw.session.get(
        f"{server.rest_url}/fapi/v3/balance?timestamp=1.7e12&signature={sign('timestamp=1.7e12')}",
        headers={"X-MBX-APIKEY": DEMO_API_KEY},
    ) as r:
        assert (r.status, await r.json()) == (400, _illegal("timestamp", integer=True))


async def _post(server: SimServer, raw: Raw, query: str, body: str) -> Any:
    signed = f"{body}&signature={sign(query + body)}" if body else ""
    if not body:
        query = f"{query}&signature={sign(query)}"
    async with raw.session.post(
        f"{server.rest_url}/fapi/v1/order?{query}",
        data=signed,
        headers={"X-MBX-APIKEY": DEMO_API_KEY, "Content-Type": "application/x-www-form-urlencoded"},
    ) as r:
        return await r.json()


async def test_a_name_sent_twice_in_the_query_or_in_the_body_is_minus_1101(server: SimServer, raw: Raw) -> None:
    ts = int(time.time() * 1000)
    duplicate = {"code": -1101, "msg": "Duplicate values for a parameter detected."}
    twice = f"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.010&quantity=0.020&timestamp={ts}"
    assert await _post(server, raw, twice, "") == duplicate
    assert await _post(server, raw, "symbol=BTCUSDT", f"side=BUY&type=MARKET&quantity=0.01&quantity=0.02&timestamp={ts}") == duplicate
    assert await _post(server, raw, f"symbol=BTCUSDT&symbol=ETHUSDT&side=BUY&type=MARKET&quantity=0.01&timestamp={ts}", "") == duplicate
    assert (await server.state())["accounts"][DEMO_API_KEY]["positions"] == [], "nothing was executed"


async def test_query_and_body_each_once_is_not_a_duplicate_the_query_wins(server: SimServer, raw: Raw) -> None:
    """Binance's futures general info: a name in both the query and the body takes the query's value."""
    ts = int(time.time() * 1000)
    placed = await _post(
        server, raw, "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.010&newOrderRespType=RESULT",
        f"quantity=0.020&timestamp={ts}",
    )
    assert placed["executedQty"] == "0.010"


async def test_symbols_and_client_ids_are_taken_exactly(raw: Raw) -> None:
    _, body, _ = await raw.order(symbol="btcusdt", side="BUY", type="MARKET", quantity="0.01")
    assert body == {"code": -1121, "msg": "Invalid symbol."}
    _, body, _ = await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newClientOrderId="ok\n")
    assert body == {"code": -4015, "msg": "Client order id is not valid."}
    _, body, _ = await raw.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newOrderRespType="result")
    assert body == {"code": -1136, "msg": "Invalid newOrderRespType."}


DECIMAL_LIKE = st.one_of(
    st.from_regex(BINANCE_DECIMAL, fullmatch=True),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.floats(allow_nan=True).map(repr),
    st.text(alphabet="0123456789.eE+-_ \t\n٠١٢٣۴０１xX", min_size=1, max_size=24),
)


def _accepted(text: str) -> bool:
    try:
        params.decimal({"quantity": text}, "quantity")
    except BinanceError as err:
        assert err.code == -1100 and err.msg == DECIMAL_MSG.format("quantity")
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(DECIMAL_LIKE.filter(bool))
def test_the_parser_accepts_a_decimal_iff_it_matches_binances_pattern(text: str) -> None:
    assert _accepted(text) == bool(BINANCE_DECIMAL.fullmatch(text))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(DECIMAL_LIKE.filter(lambda t: bool(t) and "\n" not in t))
async def test_the_exchange_answers_minus_1100_iff_the_quantity_breaks_binances_pattern(raw: Raw, text: str) -> None:
    status, body, _ = await raw.signed(
        "POST", "/fapi/v1/order", in_body=True, symbol="BTCUSDT", side="SELL", type="LIMIT",
        timeInForce="GTC", price="200000", quantity=text,
    )
    illegal = status == 400 and body.get("code") == -1100
    assert illegal == (not BINANCE_DECIMAL.fullmatch(text)), (quote(text), body)
    assert body.get("code") != -1102, body
