"""RestTransport at the HTTP boundary: what goes on the wire, to a recording loopback server.

The "exchange" is a tiny aiohttp server that answers by path and records every request; signing,
URLs, the governor, the clock and ccxt's own HTTP client are the real ones. End-to-end behaviour
against the simulator is in test_sim_rest.py.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from loguru import logger

from aegis.binance import BinanceRest, ClockSkew, Rejected
from aegis.binance.endpoints import Endpoint
from aegis.clock import Clock

KEY, SECRET = "test-key", "test-secret-do-not-log"


class Wire:
    """Answers by path (the last reply repeats); records every request."""

    def __init__(self, server_offset_ms: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: dict[str, list[tuple[int, bytes]]] = {}
        self.clock = Clock()
        self.server_offset_ms = server_offset_ms
        self.base = ""

    def reply(self, path: str, status: int, body: bytes) -> None:
        self.replies.setdefault(path, []).append((status, body))

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests.append(
            {"url": str(request.url), "path": request.path, "method": request.method,
             "headers": request.headers, "body": body or None}
        )  # fmt: skip
        if request.path == "/fapi/v1/time":
            now = self.clock.now_ms() + self.server_offset_ms
            return web.Response(
                body=f'{{"serverTime":{now}}}'.encode(), headers={"x-mbx-used-weight-1m": "1"},
                content_type="application/json",
            )  # fmt: skip
        queue = self.replies.get(request.path, [])
        status, payload = queue.pop(0) if len(queue) > 1 else queue[0]
        return web.Response(
            status=status, body=payload, headers={"X-MBX-USED-WEIGHT-1M": "7"}, content_type="application/json"
        )


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    fake = Wire()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.base = f"http://127.0.0.1:{server.port}"
    yield fake
    await server.close()


def rest_on(wire: Wire, clock: Clock | None = None) -> BinanceRest:
    return BinanceRest(wire.base, KEY, SECRET, clock or wire.clock, recv_window_ms=5000)


ORDER = b'{"orderId":8389765739703625592,"symbol":"BTCUSDT","status":"NEW","clientOrderId":"c1","price":"1.0","avgPrice":"0","origQty":"1","executedQty":"0","timeInForce":"GTC","type":"LIMIT","side":"BUY","updateTime":1}'


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    yield lines
    logger.remove(sink)


async def test_signed_request_uses_server_time_and_a_valid_signature(wire: Wire) -> None:
    wire.server_offset_ms = 3_600_000  # the exchange is an hour ahead of this host
    wire.reply("/fapi/v1/order", 200, ORDER)
    rest = rest_on(wire)
    order = await rest.get_order("BTCUSDT", client_order_id="c1")
    await rest.close()
    assert order.order_id == 8389765739703625592
    time_call, call = wire.requests
    assert time_call["path"] == "/fapi/v1/time"  # synced before the first signed request
    query = urllib.parse.urlsplit(call["url"]).query
    params = dict(urllib.parse.parse_qsl(query))
    assert abs(int(params["timestamp"]) - (wire.clock.now_ms() + 3_600_000)) < 1_000
    assert params["recvWindow"] == "5000" and params["origClientOrderId"] == "c1"
    unsigned, signature = query.rsplit("&signature=", 1)
    assert signature == hmac.new(SECRET.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
    assert call["headers"]["X-MBX-APIKEY"] == KEY


async def test_post_parameters_go_in_the_body_with_plain_decimal_strings(wire: Wire) -> None:
    from decimal import Decimal

    from aegis.domain import OrderRequest, OrderType, Side, TimeInForce

    wire.reply("/fapi/v1/order", 200, ORDER)
    rest = rest_on(wire)
    request = OrderRequest(
        "BTCUSDT",
        Side.BUY,
        OrderType.LIMIT,
        Decimal("1E-3"),
        "c1",
        price=Decimal("1.2E+4"),
        time_in_force=TimeInForce.GTC,
    )
    await rest.place_order(request)
    await rest.close()
    body = dict(urllib.parse.parse_qsl(wire.requests[-1]["body"]))
    assert body["quantity"] == "0.001" and body["price"] == "12000"  # never an exponent
    assert body["newClientOrderId"] == "c1" and body["newOrderRespType"] == "RESULT"


async def test_start_up_makes_no_call_outside_the_futures_api(wire: Wire) -> None:
    wire.reply("/fapi/v1/exchangeInfo", 200, b'{"rateLimits":[],"symbols":[]}')
    rest = rest_on(wire)
    await rest.exchange_info()
    with pytest.raises(Rejected):  # a spot/sapi section is simply not configured: nothing is sent
        await rest.transport.call(Endpoint("GET", "sapi", "capital/config/getall", 1))
    await rest.close()
    assert [r["path"] for r in wire.requests] == ["/fapi/v1/exchangeInfo"]


async def test_minus_1021_resyncs_the_clock_and_resends_once_with_a_new_signature(
    wire: Wire, log_lines: list[str]
) -> None:
    wire.reply(
        "/fapi/v1/order",
        400,
        b'{"code":-1021,"msg":"Timestamp for this request is outside of the recvWindow."}',
    )
    wire.reply("/fapi/v1/order", 200, ORDER)
    rest = rest_on(wire)
    await rest.server_clock.sync()
    wire.server_offset_ms = 90_000  # the exchange clock jumped
    order = await rest.get_order("BTCUSDT", client_order_id="c1")
    await rest.close()
    assert order.client_order_id == "c1"
    paths = [r["path"] for r in wire.requests]
    assert paths == ["/fapi/v1/time", "/fapi/v1/order", "/fapi/v1/time", "/fapi/v1/order"]
    first, second = (
        dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(wire.requests[i]["url"]).query)) for i in (1, 3)
    )
    assert int(second["timestamp"]) - int(first["timestamp"]) >= 89_000
    assert first["signature"] != second["signature"]
    assert rest.offset_ms >= 89_000 and rest.transport.clock_retries == 1
    text = "\n".join(log_lines)
    assert "resending once" in text
    assert SECRET not in text and "signature=" not in text


async def test_a_second_minus_1021_is_raised_not_looped(wire: Wire) -> None:
    wire.reply(
        "/fapi/v1/order",
        400,
        b'{"code":-1021,"msg":"Timestamp for this request was 1000ms ahead of the server\'s time."}',
    )
    rest = rest_on(wire)
    with pytest.raises(ClockSkew):
        await rest.get_order("BTCUSDT", client_order_id="c1")
    await rest.close()
    assert [r["path"] for r in wire.requests].count("/fapi/v1/order") == 2


async def test_used_weight_of_each_response_reaches_the_governor(wire: Wire) -> None:
    wire.reply("/fapi/v1/klines", 200, b"[]")
    rest = rest_on(wire)
    await rest.klines("BTCUSDT", limit=1500)
    await rest.close()
    assert rest.governor.used_weight == 10  # our cost (10) beats the header (7): max of both
