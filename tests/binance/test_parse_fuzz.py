"""Fuzzing the parsers: truncated, mistyped and unknown payloads only ever raise ParseError."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.binance import parse
from aegis.binance.errors import ParseError
from tests.binance.fixtures import all_names, raw

PARSERS: dict[str, Callable[[bytes], Any]] = {
    "kline_frame": parse.parse_kline_frame,
    "klines": lambda b: parse.parse_klines(b, "BTCUSDT"),
    "exchange_info": parse.parse_exchange_info,
    "order": parse.parse_order,
    "orders": parse.parse_orders,
    "algo_order": parse.parse_algo_order,
    "algo_cancel": parse.parse_algo_cancel,
    "algo_orders": parse.parse_algo_orders,
    "position_mode": parse.parse_position_mode,
    "user_trades": parse.parse_user_trades,
    "position_risk": parse.parse_position_risk,
    "account_balances": parse.parse_account_balances,
    "listen_key": parse.parse_listen_key,
    "leverage": parse.parse_leverage,
    "server_time": parse.parse_server_time,
    "user_event": parse.parse_user_event,
}

SMALL = [n for n in all_names() if "exchangeInfo" not in n]  # 1 MB documents make examples slow
SAMPLES = [raw(n) for n in SMALL]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(
        ["", "NaN", "Infinity", "-0", "1e400", "0.1", "abc", "GTE_GTC", "TRADE", "BUY", "kline"]
    )
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)


def only_parse_errors(payload: bytes) -> None:
    for name, parser in PARSERS.items():
        try:
            parser(payload)
        except ParseError as exc:
            assert exc.raw == payload, name
        # any other exception type fails the test


def mutate(doc: Any, path: list[int], value: Any) -> Any:
    """Replace one node (chosen by successive indices) of a JSON document with ``value``."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return value
    if isinstance(doc, dict):
        key = list(doc)[path[0] % len(doc)]
        return {**doc, key: mutate(doc[key], path[1:], value)}
    i = path[0] % len(doc)
    return [*doc[:i], mutate(doc[i], path[1:], value), *doc[i + 1 :]]


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_truncated_payloads(sample: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=max(0, len(sample) - 1)))
    only_parse_errors(sample[:cut])


@FUZZ
@given(st.sampled_from(SAMPLES), st.lists(st.integers(min_value=0, max_value=50), max_size=5), json_values)
def test_mistyped_fields_in_real_payloads(sample: bytes, path: list[int], value: Any) -> None:
    doc = mutate(json.loads(sample), path, value)
    only_parse_errors(json.dumps(doc).encode())


@FUZZ
@given(st.sampled_from(SAMPLES), st.text(min_size=1, max_size=6), json_values)
def test_unknown_fields_are_ignored_or_rejected_cleanly(sample: bytes, key: str, value: Any) -> None:
    doc = json.loads(sample)
    if isinstance(doc, dict):
        doc = {**doc, key: value}
    only_parse_errors(json.dumps(doc).encode())


@FUZZ
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    only_parse_errors(json.dumps(value).encode())


@FUZZ
@given(st.binary(max_size=64))
def test_arbitrary_bytes(payload: bytes) -> None:
    only_parse_errors(payload)


def test_exchange_info_with_one_broken_symbol_keeps_the_others() -> None:
    doc = json.loads(raw("fapi_v1_exchangeInfo.json"))
    doc["symbols"][0]["filters"] = "broken"
    info = parse.parse_exchange_info(json.dumps(doc).encode())
    assert "BTCUSDT" not in info.symbols and len(info.symbols) == 346 and len(info.skipped) == 1


@FUZZ
@given(
    st.integers(min_value=100, max_value=599),
    st.binary(max_size=80) | st.sampled_from([raw(n) for n in all_names() if n.startswith("error_")]),
    st.dictionaries(st.sampled_from(["Retry-After", "retry-after", "X"]), st.text(max_size=6), max_size=2),
    st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
)
def test_classify_always_answers_with_one_adapter_error(
    status: int, body: bytes, headers: dict[str, str], method: str
) -> None:
    from aegis.binance.errors import ExchangeError, classify

    error = classify(status, body, headers, method=method)
    assert isinstance(error, ExchangeError) and error.http_status == status


def test_position_mode_accepts_bool_and_string_flags_only() -> None:
    assert parse.parse_position_mode(b'{"dualSidePosition": true}') is True
    assert parse.parse_position_mode(b'{"dualSidePosition": "false"}') is False
    with pytest.raises(ParseError):
        parse.parse_position_mode(b'{"dualSidePosition": "maybe"}')
