"""The admin API validates what it is sent: bounded, typed, a clear 400, and nothing changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from aegis.sim.config import DEMO_API_KEY, AccountSpec, SimConfig
from aegis.sim.server import SimServer

START = 1_700_000_000_000
DAY_MS = 86_400_000


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(start_ms=START)) as s:
        yield s


async def _post(server: SimServer, path: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        data = body if isinstance(body, str) else None
        async with session.post(
            f"{server.rest_url}{path}", json=None if data is not None else body, data=data,
            headers={"Content-Type": "application/json"},
        ) as r:
            return r.status, await r.json(content_type=None)


@pytest.mark.parametrize(
    "body",
    [
        '{"jump_ms": 1e300}',  # hung the simulator at 100% CPU
        '{"jump_ms": -1e15}',  # banned every request forever
        {"jump_ms": -(10**15)},
        {"jump_ms": 367 * DAY_MS},
        {"jump_ms": 1.5},
        {"jump_ms": "60000"},
        {"jump_ms": True},
        '{"speed": NaN}',
        {"speed": 0},
        {"speed": -1},
        {"speed": 1e9},
        {"speed": "fast"},
        {"jmp_ms": 1000},
        "[1]",
        "not json",
    ],
)
async def test_a_bad_clock_request_is_400_and_the_clock_does_not_move(server: SimServer, body: Any) -> None:
    before = await server.state()
    status, answer = await _post(server, "/_sim/clock", body)
    assert status == 400 and answer["error"]
    after = await server.state()
    assert (after["clock_ms"], after["speed"]) == (before["clock_ms"], before["speed"])
    assert (await server.set_clock(jump_ms=DAY_MS))["clock_ms"] >= START + DAY_MS, "still serving"


async def test_a_good_clock_request_still_works(server: SimServer) -> None:
    reply = await server.set_clock(speed=60, jump_ms=366 * DAY_MS)
    assert reply["speed"] == 60 and reply["clock_ms"] >= START + 366 * DAY_MS
    assert (await _post(server, "/_sim/clock", {"jump_ms": -366 * DAY_MS}))[0] == 200


BAD_FAULTS = [
    {"kind": "rate_limit", "seconds": 1e300},
    {"kind": "rate_limit", "seconds": -1},
    {"kind": "rate_limit", "status": 500},
    {"kind": "rate_limit", "secs": 60},  # a typo must not silently mean the default
    {"kind": "latency", "ms": 1e12},
    {"kind": "latency", "ms": 10, "seconds": float("inf")},
    {"kind": "unknown_outcome", "hold_s": 1e9},
    {"kind": "unknown_outcome", "mode": "maybe"},
    {"kind": "unknown_outcome", "count": 0},
    {"kind": "unknown_outcome", "count": 10**12},
    {"kind": "fail_requests", "status": 999},
    {"kind": "fail_requests", "code": 1008},
    {"kind": "fail_requests", "path": "fapi/v1/order"},
    {"kind": "fail_requests", "method": "FETCH"},
    {"kind": "fail_requests", "msg": "x" * 5000},
    {"kind": "clock_jump", "ms": 1e300},
    {"kind": "clock_jump", "ms": -(10**15)},
    {"kind": "pause_user", "seconds": "forever"},
    {"kind": "pause_market", "candles": 0},
    {"kind": "pause_market", "symbols": "BTCUSDT"},
    {"kind": "duplicate_market", "count": -5},
    {"kind": "reorder_market", "count": 1},
    {"kind": "drop_ws", "scope": "everything"},
    {"kind": "freeze_ws", "api_key": 42},
    {"kind": "expire_listen_key", "api_key": ["a"]},
    {"kind": "meteor"},
]


@pytest.mark.parametrize("spec", BAD_FAULTS, ids=[f"{s['kind']}-{i}" for i, s in enumerate(BAD_FAULTS)])
async def test_a_bad_fault_is_400_and_nothing_is_injected(server: SimServer, spec: dict[str, Any]) -> None:
    before = (await server.state())["clock_ms"]
    body = '{"kind": "clock_jump", "ms": 1e300}' if spec == {"kind": "clock_jump", "ms": 1e300} else spec
    if spec.get("seconds") == float("inf"):
        body = '{"kind": "latency", "ms": 10, "seconds": Infinity}'
    status, answer = await _post(server, "/_sim/faults", body)
    assert status == 400 and answer["error"], answer
    async with aiohttp.ClientSession() as session, session.get(f"{server.rest_url}/_sim/faults") as r:
        assert await r.json() == []
    assert (await server.state())["clock_ms"] - before < 60_000
    async with aiohttp.ClientSession() as session, session.get(f"{server.rest_url}/fapi/v1/time") as r:
        assert r.status == 200, "nothing was banned, throttled or frozen"


@pytest.mark.parametrize(
    "body",
    [
        {"api_key": DEMO_API_KEY, "symbol": "BTCUSDT", "side": "BUY", "quantity": 0.01},
        {"api_key": DEMO_API_KEY, "symbol": "BTCUSDT", "side": "BUY", "quantity": True},
        {"api_key": DEMO_API_KEY, "symbol": "BTCUSDT", "side": "HOLD", "quantity": "0.01"},
        {"api_key": DEMO_API_KEY, "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01", "events": "yes"},
        {"api_key": DEMO_API_KEY, "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01", "qty": "1"},
        {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"},
    ],
)
async def test_a_bad_trade_is_400_and_nothing_trades(server: SimServer, body: dict[str, Any]) -> None:
    status, answer = await _post(server, "/_sim/trade", body)
    assert status == 400 and answer["error"]
    assert (await server.state())["accounts"][DEMO_API_KEY]["positions"] == []


@pytest.mark.parametrize(
    "text",
    ["mykey:hunter2-secret:abc", "mykey:hunter2-secret:-1", "mykey:hunter2-secret:1e3", "mykey:hunter2-secret:1:2", ":hunter2-secret", "mykey:hunter2-secret: 10"],
)
def test_account_flag_errors_never_echo_the_secret(text: str) -> None:
    with pytest.raises(ValueError) as err:
        AccountSpec.parse(text)
    assert "hunter2" not in str(err.value) and str(err.value)
    assert "hunter2" not in repr(AccountSpec.parse("mykey:hunter2-secret:10"))
