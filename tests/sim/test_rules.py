"""Binance's rules, hand-computed from the real exchangeInfo: filters, signing, time, rate limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.sim import fillmodel, filters
from aegis.sim.config import DEMO_API_KEY, SimConfig
from aegis.sim.errors import BinanceError
from aegis.sim.server import SimServer
from aegis.sim.symbols import ExchangeInfo, SymbolSpec
from tests.sim.rest_helpers import Raw, sign

INFO = ExchangeInfo.load(SimConfig())
TRADING = sorted(s for s, spec in INFO.symbols.items() if spec.status == "TRADING")
BTC = INFO.symbols["BTCUSDT"]
START = 1_795_000_040_000  # 20 s into a minute: room for a test before the 1-minute window rolls


def code(fn: object, *args: object, **kw: object) -> int | None:
    try:
        fn(*args, **kw)  # type: ignore[operator]
    except BinanceError as exc:
        return exc.code
    return None


# ----- filters, against the real BTCUSDT entry: tick 0.10 from 556.80, lot 0.001..1000, market lot ..120 -----
@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ("556.80", None),
        ("556.70", -4013),
        ("0", -4013),
        ("4529764", None),
        ("4529764.1", -4002),
        ("60000.10", None),
        ("60000.05", -4014),
        ("60000.123", -1111),
        ("60000.1000", None),
    ],
)
def test_btc_price_filter(price: str, expected: int | None) -> None:
    assert code(filters.check_price, BTC, Decimal(price)) == expected


@pytest.mark.parametrize(
    ("qty", "market", "expected"),
    [
        ("0.001", False, None),
        ("0", False, -4003),
        ("-1", False, -4003),
        ("0.0005", False, -4004),
        ("1000", False, None),
        ("1000.001", False, -4005),
        ("120", True, None),
        ("120.001", True, -4005),
        ("0.0015", False, -1111),
        ("0.0010", False, None),
    ],
)
def test_btc_lot_size(qty: str, market: bool, expected: int | None) -> None:
    assert code(filters.check_quantity, BTC, Decimal(qty), market=market) == expected


def test_step_size_and_notional_messages() -> None:
    coarse = SymbolSpec(**{**{f: getattr(BTC, f) for f in BTC.__slots__}, "step": Decimal("0.005")})  # type: ignore[arg-type]
    assert code(filters.check_quantity, coarse, Decimal("0.003"), market=False) == -4023
    with pytest.raises(BinanceError) as err:
        filters.check_min_notional(BTC, Decimal("60000"), Decimal("0.001"), reduce_only=False)
    assert err.value.code == -4164
    assert err.value.msg == "Order's notional must be no smaller than 100 (unless you choose reduce only)."
    filters.check_min_notional(BTC, Decimal("60000"), Decimal("0.001"), reduce_only=True)  # exempt
    with pytest.raises(BinanceError) as err:
        filters.check_percent_price(BTC, "BUY", Decimal("63000.10"), Decimal("60000"))
    assert (err.value.code, err.value.msg) == (-4016, "Limit price can't be higher than 63000.00.")
    assert code(filters.check_percent_price, BTC, "SELL", Decimal("56999.90"), Decimal("60000")) == -4024
    assert code(filters.check_percent_price, BTC, "SELL", Decimal("57000.00"), Decimal("60000")) is None


@settings(max_examples=300, deadline=None)
@given(symbol=st.sampled_from(TRADING), k=st.integers(min_value=0, max_value=10**7), market=st.booleans())
def test_any_quantity_on_the_step_grid_within_limits_passes(symbol: str, k: int, market: bool) -> None:
    spec = INFO.symbols[symbol]
    lo, hi, step = (
        (spec.market_min_qty, spec.market_max_qty, spec.market_step)
        if market
        else (spec.min_qty, spec.max_qty, spec.step)
    )
    qty = lo + step * k
    expected = -4005 if qty > hi else None
    assert code(filters.check_quantity, spec, qty, market=market) == expected


@settings(max_examples=300, deadline=None)
@given(symbol=st.sampled_from(TRADING), k=st.integers(min_value=0, max_value=10**9), frac=st.integers(1, 9))
def test_prices_on_and_off_the_tick_grid(symbol: str, k: int, frac: int) -> None:
    spec = INFO.symbols[symbol]
    on = spec.min_price + spec.tick * k
    assert code(filters.check_price, spec, on) == (-4002 if on > spec.max_price else None)
    off = on + spec.tick * frac / 10
    if off <= spec.max_price:
        assert code(filters.check_price, spec, off) in (-4014, -1111)


# ----- over HTTP: signing, time, weights -----
@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(start_ms=START, fill_model="bps:600")) as s:
        yield s


@pytest.fixture
async def limited() -> AsyncIterator[tuple[SimServer, Raw]]:
    """Tiny limits: 12 weight per minute, 3 orders per 10 s, banned after 2 requests past a 429."""
    async with SimServer(
        SimConfig(start_ms=START, weight_limit_1m=12, orders_limit_10s=3, ban_after_429s=2)
    ) as s:
        r = Raw(s)
        yield s, r
        await r.close()


async def test_signature_over_query_plus_body_as_received(server: SimServer) -> None:
    ts = int(time.time() * 1000)
    query = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.010"
    body = f"quantity=0.020&newOrderRespType=RESULT&timestamp={ts}"
    sig = sign(query + body)
    headers = {"X-MBX-APIKEY": DEMO_API_KEY, "Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as s:
        url = f"{server.rest_url}/fapi/v1/order?{query}"
        async with s.post(url, data=f"{body}&signature={sig}", headers=headers) as r:
            placed = await r.json()
        assert r.status == 400 and placed["code"] == -4131  # 6% slippage breaks PERCENT_PRICE 5%
        async with s.post(
            url, data=f"{body}&signature={sig[:-1]}{'1' if sig[-1] == '0' else '0'}", headers=headers
        ) as r:
            assert (await r.json())["code"] == -1022
        async with s.post(url, data=body, headers=headers) as r:
            assert await r.json() == {
                "code": -1102,
                "msg": "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
            }
        async with s.get(f"{server.rest_url}/fapi/v3/account?timestamp={ts}&signature=00") as r:
            assert (r.status, (await r.json())["code"]) == (401, -2014)


async def test_query_wins_over_body(raw: Raw, server: SimServer) -> None:
    server.sim.exchange.matcher.fill_model = fillmodel.parse("none")
    ts = int(time.time() * 1000)
    query = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.010&newOrderRespType=RESULT"
    body = f"quantity=0.020&timestamp={ts}"
    async with raw.session.post(
        f"{server.rest_url}/fapi/v1/order?{query}",
        data=f"{body}&signature={sign(query + body)}",
        headers={"X-MBX-APIKEY": DEMO_API_KEY, "Content-Type": "application/x-www-form-urlencoded"},
    ) as r:
        assert (await r.json())["executedQty"] == "0.010"
    status, canceled, _ = await raw.signed("DELETE", "/fapi/v1/allOpenOrders", in_body=True, symbol="BTCUSDT")
    assert status == 200 and canceled["code"] == 200


async def test_recv_window(raw: Raw) -> None:
    now = int(time.time() * 1000)
    assert (await raw.signed("GET", "/fapi/v3/balance", timestamp=now - 4000))[0] == 200
    status, body, _ = await raw.signed("GET", "/fapi/v3/balance", timestamp=now - 6000)
    assert (status, body) == (
        400,
        {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
    )
    assert (await raw.signed("GET", "/fapi/v3/balance", timestamp=now - 6000, recvWindow=8000))[0] == 200
    _, body, _ = await raw.signed("GET", "/fapi/v3/balance", timestamp=now + 2000)
    assert body == {"code": -1021, "msg": "Timestamp for this request was 1000ms ahead of the server's time."}
    _, body, _ = await raw.signed("GET", "/fapi/v3/balance", timestamp=now, recvWindow=70000)
    assert body["code"] == -1130


async def test_weight_limit_429_then_ban_418(limited: tuple[SimServer, Raw]) -> None:
    server, raw = limited
    used = []
    for _ in range(6):  # klines limit 100..499 weighs 2
        status, _, headers = await raw.public("/fapi/v1/klines", symbol="BTCUSDT", interval="1m", limit=100)
        assert status == 200
        used.append(int(headers["X-MBX-USED-WEIGHT-1M"]))
    assert used == [2, 4, 6, 8, 10, 12]
    status, body, headers = await raw.public("/fapi/v1/time")
    assert (status, body["code"]) == (429, -1003) and "current limit of IP(127.0.0.1) is 12 requests" in body[
        "msg"
    ]
    assert 1 <= int(headers["Retry-After"]) <= 41
    assert (await raw.public("/fapi/v1/time"))[0] == 429
    status, body, headers = await raw.public("/fapi/v1/time")  # kept going: banned
    assert status == 418 and body["code"] == -1003 and "banned until" in body["msg"]
    until = int(body["msg"].split("banned until ")[1].split(".")[0])
    assert until == pytest.approx(server.sim.clock.now_ms() + 120_000, abs=2000)
    assert int(headers["Retry-After"]) >= 119
    await server.set_clock(jump_ms=60_000)  # a new weight window, but the ban lasts 2 minutes
    assert (await raw.public("/fapi/v1/time"))[0] == 418
    await server.set_clock(jump_ms=61_000)
    assert (await raw.public("/fapi/v1/time"))[0] == 200


async def test_order_count_limit(limited: tuple[SimServer, Raw]) -> None:
    server, raw = limited
    server.sim.clock.jump(10_000 - server.sim.clock.now_ms() % 10_000 + 100)  # start of a 10 s window
    counts = []
    for _ in range(3):
        status, body, headers = await raw.order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.010", price="60000"
        )
        assert status == 200, body
        counts.append((headers["X-MBX-ORDER-COUNT-10S"], headers["X-MBX-ORDER-COUNT-1M"]))
    assert counts == [("1", "1"), ("2", "2"), ("3", "3")]
    status, body, headers = await raw.order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.010", price="60000"
    )
    assert (status, body["code"]) == (429, -1015) and "Retry-After" in headers
    assert body["msg"] == "Too many new orders; current limit is 3 orders per 10 SECOND."


async def test_rate_limits_are_configurable_off() -> None:
    async with SimServer(SimConfig(rate_limits=False, weight_limit_1m=1)) as server:
        raw = Raw(server)
        try:
            for i in range(5):
                status, _, headers = await raw.public("/fapi/v1/time")
                assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == str(i + 1)
        finally:
            await raw.close()


async def test_exchange_info_reports_the_limits_in_force(limited: tuple[SimServer, Raw]) -> None:
    _, raw = limited
    _, info, _ = await raw.public("/fapi/v1/exchangeInfo")
    limits = {(x["rateLimitType"], x["interval"]): x["limit"] for x in info["rateLimits"]}
    assert limits == {("REQUEST_WEIGHT", "MINUTE"): 12, ("ORDERS", "MINUTE"): 1200, ("ORDERS", "SECOND"): 3}


async def test_mandatory_and_symbol_errors(raw: Raw) -> None:
    _, body, _ = await raw.public("/fapi/v1/klines", symbol="NOPE", interval="1m")
    assert body == {"code": -1121, "msg": "Invalid symbol."}
    _, body, _ = await raw.public("/fapi/v1/klines", symbol="BTCUSDT")
    assert body["code"] == -1102 and "'interval'" in body["msg"]
    _, body, _ = await raw.order(symbol="BTCUSDT", side="BUY", type="LIMIT", quantity="0.01", price="60000")
    assert body == {
        "code": -1102,
        "msg": "Mandatory parameter 'timeinforce' was not sent, was empty/null, or malformed.",
    }
    _, body, _ = await raw.order(
        symbol="BTCUSDT", side="BUY", type="TAKE_PROFIT_MARKET", stopPrice="1", closePosition="true"
    )
    assert body["code"] == -4120
    _, body, _ = await raw.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT", limit="ten")
    assert body["code"] == -1100 and "'limit'" in body["msg"]


def test_account_flag_parsing() -> None:
    from aegis.sim.config import DEMO_BALANCE_USDT, AccountSpec

    assert AccountSpec.parse("k:s") == AccountSpec("k", "s", DEMO_BALANCE_USDT)
    assert AccountSpec.parse("k:s:2500.5").balance_usdt == Decimal("2500.5")
    for bad in ("k", ":s", "k:", "k:s:abc", "k:s:-1", "k:s:1:2"):
        with pytest.raises(ValueError):
            AccountSpec.parse(bad)
