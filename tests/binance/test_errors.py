"""Classification decides retry behaviour for the whole engine: one table, asserted here."""

from __future__ import annotations

import aiohttp
import pytest

from aegis.binance.errors import (
    AuthError,
    ClockSkew,
    ExchangeError,
    ListenKeyNotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Retryable,
    classify,
    classify_transport,
)


def body(code: int, msg: str) -> bytes:
    return f'{{"code":{code},"msg":"{msg}"}}'.encode()


@pytest.mark.parametrize(
    ("status", "payload", "method", "expected"),
    [
        (
            503,
            body(-1000, "Unknown error, please check your request or try again later."),
            "POST",
            OutcomeUnknown,
        ),
        (503, body(-1000, "Unknown error, please check your request or try again later."), "GET", Retryable),
        (503, body(-1001, "Service Unavailable."), "POST", Retryable),
        (503, body(-1008, "Server is currently overloaded with other requests."), "POST", Retryable),
        (408, body(-1007, "Timeout waiting for response from backend server."), "POST", OutcomeUnknown),
        (
            400,
            body(-1006, "An unexpected response was received from the message bus."),
            "DELETE",
            OutcomeUnknown,
        ),
        (400, body(-1007, "Timeout waiting for response from backend server."), "GET", Retryable),
        (500, b"<html>Internal Server Error</html>", "POST", OutcomeUnknown),
        (502, b"Bad Gateway", "GET", Retryable),
        (400, body(-5028, "Timestamp for this request is outside of the ME recvWindow."), "POST", ClockSkew),
        (400, body(-1022, "Signature for this request is not valid."), "GET", AuthError),
        (401, body(-2015, "Invalid API-key, IP, or permissions for action"), "GET", AuthError),
        (400, body(-1125, "This listenKey does not exist."), "PUT", ListenKeyNotFound),
        (
            429,
            body(-1003, "Too many requests; current limit of IP(1.2.3.4) is 2400 requests per minute."),
            "GET",
            RateLimited,
        ),
        (
            400,
            body(-1015, "Too many new orders; current limit is 300 orders per TEN_SECONDS."),
            "POST",
            RateLimited,
        ),
        (400, body(-4116, "ClientOrderId is duplicated."), "POST", Rejected),
        (403, b"<html>WAF</html>", "GET", Rejected),
        (404, b"", "GET", Rejected),
    ],
)
def test_status_and_code_decide_the_class(status: int, payload: bytes, method: str, expected: type) -> None:
    error = classify(status, payload, {}, method=method, endpoint="X /fapi/v1/x")
    assert type(error) is expected
    assert isinstance(error, ExchangeError) and error.http_status == status


def test_retry_after_header_is_read_case_insensitively() -> None:
    error = classify(429, body(-1003, "Too many requests"), {"retry-after": "7"}, method="GET")
    assert isinstance(error, RateLimited) and error.retry_after_s == 7.0 and error.until_ms is None
    error = classify(429, body(-1003, "Too many requests"), {"Retry-After": "3"}, method="GET")
    assert isinstance(error, RateLimited) and error.retry_after_s == 3.0


def test_message_with_code_and_endpoint_reads_well_in_a_log() -> None:
    error = classify(
        400, body(-2019, "Margin is insufficient."), {}, method="POST", endpoint="POST /fapi/v1/order"
    )
    assert str(error) == "Rejected POST /fapi/v1/order HTTP 400 code -2019: Margin is insufficient."


def test_transport_failure_before_sending_is_retryable_after_sending_unknown() -> None:
    refused = aiohttp.ClientConnectionError("refused")
    assert type(classify_transport(refused, sent=False, method="POST")) is Retryable
    assert type(classify_transport(TimeoutError(), sent=True, method="POST")) is OutcomeUnknown
    assert type(classify_transport(TimeoutError(), sent=True, method="GET")) is Retryable


def test_transport_error_text_never_carries_a_signature_or_listen_key() -> None:
    exc = aiohttp.InvalidURL("http://x/fapi/v1/order?symbol=BTCUSDT&timestamp=1&signature=abcdef0123")
    text = str(classify_transport(exc, sent=False, method="GET"))
    assert "abcdef0123" not in text and "signature=***" in text
    exc = aiohttp.InvalidURL("ws://x/private/ws?listenKey=SECRETKEY")
    assert "SECRETKEY" not in str(classify_transport(exc, sent=False, method="GET"))


def test_a_nonsense_retry_after_is_ignored() -> None:
    for value in ("inf", "nan", "-5", "soon"):
        error = classify(429, body(-1003, "Too many requests"), {"Retry-After": value}, method="GET")
        assert isinstance(error, RateLimited) and error.retry_after_s is None
