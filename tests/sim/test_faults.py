"""Each fault kind does exactly what it says, as a plain aiohttp client sees it."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.sim.wsharness import API_KEY, MINUTE_MS, Harness, harness, kline_event, recv_json, silent

T0 = 1_700_000_040_000


async def _order(h: Harness, method: str = "POST", client_timeout: float = 5.0) -> tuple[int, dict[str, object]]:
    async with h.session.request(method, f"{h.url}/fapi/v1/order", timeout=aiohttp.ClientTimeout(total=client_timeout)) as resp:
        return resp.status, await resp.json()


async def test_fail_requests_answers_without_executing_then_recovers() -> None:
    async with harness() as h:
        fid = await h.inject("fail_requests", path="/fapi/v1/order", method="POST", count=2, status=503, code=-1008)
        for _ in range(2):
            status, body = await _order(h)
            assert status == 503 and body["code"] == -1008
        assert h.executed == []
        assert (await _order(h, "GET"))[0] == 200, "other methods are not matched"
        assert (await _order(h))[0] == 200
        assert h.executed == ["GET", "POST"]
        row = next(f for f in await h.faults() if f["id"] == fid)
        assert row["status"] == "done" and row["hits"] == 2 and row["effective_ms"] > 0


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [("503", 503, -1000), ("-1007", 408, -1007)],
)
async def test_unknown_outcome_executes_but_hides_the_result(mode: str, status: int, code: int) -> None:
    async with harness() as h:
        await h.inject("unknown_outcome", path="/fapi/v1/order", count=1, mode=mode)
        got_status, body = await _order(h)
        assert (got_status, body["code"]) == (status, code)
        assert "unknown" in str(body["msg"]).lower()
        assert h.executed == ["POST"], "the order was executed despite the error"
        assert (await _order(h))[1]["orderId"] == 2


async def test_unknown_outcome_timeout_holds_the_response_past_the_client_timeout() -> None:
    async with harness() as h:
        await h.inject("unknown_outcome", path="/fapi/v1/order", count=1, mode="timeout", hold_s=5)
        with pytest.raises(TimeoutError):
            await _order(h, client_timeout=0.3)
        assert h.executed == ["POST"]


async def test_rate_limit_429_then_418_with_retry_after_for_simulated_seconds() -> None:
    async with harness() as h:
        fid = await h.inject("rate_limit", seconds=60, status=429)
        async with h.session.get(f"{h.url}/fapi/v1/time") as resp:
            body = await resp.json()
            assert resp.status == 429 and body["code"] == -1003 and body["msg"].startswith("Too many requests;")
            assert 50 <= int(resp.headers["Retry-After"]) <= 60
        assert (await _order(h))[0] == 429 and h.executed == []
        assert len(await h.faults()) == 1, "admin routes are never faulted"
        h.clock.jump(61_000)
        assert (await _order(h))[0] == 200
        assert next(f for f in await h.faults() if f["id"] == fid)["status"] == "done"

        ban = await h.inject("rate_limit", seconds=120, status=418)
        row = next(f for f in await h.faults() if f["id"] == ban)
        until = row["effective_ms"] + 120_000
        assert row["detail"]["until_ms"] == until
        status, body = await _order(h)
        assert status == 418 and f"banned until {until}" in str(body["msg"])


async def test_retry_after_is_wall_seconds_on_an_accelerated_clock() -> None:
    """A client sleeps Retry-After on its own clock: at 60x, an exchange hour is a wall minute."""
    async with harness(speed=60.0) as h:
        await h.inject("rate_limit", seconds=3600, status=429)
        async with h.session.get(f"{h.url}/fapi/v1/time") as resp:
            assert resp.status == 429
            assert 55 <= int(resp.headers["Retry-After"]) <= 60


@pytest.mark.wallclock  # TODO(virtual time): converted with the harness
async def test_latency_delays_responses_until_deleted() -> None:
    async with harness() as h:
        fid = await h.inject("latency", ms=300)
        started = time.monotonic()
        assert (await _order(h))[0] == 200
        assert time.monotonic() - started >= 0.3
        async with h.session.delete(f"{h.url}/_sim/faults/{fid}") as resp:
            assert (await resp.json())["status"] == "cleared"
        started = time.monotonic()
        await _order(h)
        assert time.monotonic() - started < 0.25


async def test_clock_jump_moves_the_simulator_clock() -> None:
    async with harness() as h:
        before = h.clock.now_ms()
        await h.inject("clock_jump", ms=3_600_000)
        async with h.session.get(f"{h.url}/fapi/v1/time") as resp:
            assert (await resp.json())["serverTime"] >= before + 3_600_000


async def test_drop_ws_aborts_without_a_close_frame_per_scope() -> None:
    async with harness() as h:
        key = (await h.listen_key())[1]["listenKey"]
        async with (
            h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m") as market,
            h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={key}") as user,
        ):
            await h.inject("drop_ws", scope="market")
            msg = await market.receive(timeout=2)
            assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR), "no close frame"
            h.bus.publish_user(API_KEY, {"e": "ACCOUNT_UPDATE", "E": 1})
            assert await recv_json(user) == {"e": "ACCOUNT_UPDATE", "E": 1}
            await h.inject("drop_ws", scope="user")
            assert (await user.receive(timeout=2)).type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def test_pause_market_withholds_n_candles_then_resumes() -> None:
    async with harness() as h:
        async with h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m") as ws:
            await h.inject("pause_market", candles=2, symbols=["BTCUSDT"])
            for i in range(3):
                h.bus.publish_kline("BTCUSDT", kline_event("BTCUSDT", T0 + i * MINUTE_MS, closed=False))
                h.bus.publish_kline("BTCUSDT", kline_event("BTCUSDT", T0 + i * MINUTE_MS, closed=True))
            first = await recv_json(ws)
            assert first["k"]["t"] == T0 + 2 * MINUTE_MS and first["k"]["x"] is False
            assert (await recv_json(ws))["k"]["x"] is True
            assert await silent(ws)
            assert (await h.faults())[0]["status"] == "done"


async def test_duplicate_market_sends_the_next_events_twice() -> None:
    async with harness() as h:
        async with h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m") as ws:
            await h.inject("duplicate_market", count=1)
            a = kline_event("BTCUSDT", T0, closed=True)
            b = kline_event("BTCUSDT", T0 + MINUTE_MS, closed=True)
            h.bus.publish_kline("BTCUSDT", a)
            h.bus.publish_kline("BTCUSDT", b)
            assert [await recv_json(ws) for _ in range(3)] == [a, a, b]
            assert await silent(ws)


async def test_reorder_market_sends_the_next_events_out_of_order() -> None:
    async with harness() as h:
        async with h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m") as ws:
            await h.inject("reorder_market", count=2)
            events = [kline_event("BTCUSDT", T0 + i * MINUTE_MS, closed=True) for i in range(3)]
            for ev in events:
                h.bus.publish_kline("BTCUSDT", ev)
            assert [await recv_json(ws) for _ in range(3)] == [events[1], events[0], events[2]]


async def test_expire_listen_key_now_sends_listen_key_expired_and_closes() -> None:
    async with harness() as h:
        key = (await h.listen_key())[1]["listenKey"]
        async with h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={key}") as ws:
            await h.inject("expire_listen_key", api_key=API_KEY)
            assert (await recv_json(ws))["e"] == "listenKeyExpired"
            assert (await ws.receive(timeout=2)).type is aiohttp.WSMsgType.CLOSE
        assert (await h.listen_key("PUT"))[1]["code"] == -1125


async def test_trade_places_an_app_order_with_or_without_events() -> None:
    async with harness() as h:
        for events in (True, False):
            async with h.session.post(
                f"{h.url}/_sim/trade",
                json={"api_key": API_KEY, "symbol": "btcusdt", "side": "SELL", "quantity": "0.002", "events": events},
            ) as resp:
                assert resp.status == 200
                assert (await resp.json())["clientOrderId"].startswith("android_")
        assert [(o[1]["symbol"], o[1]["type"], o[1]["side"], o[2]) for o in h.orders] == [
            ("BTCUSDT", "MARKET", "SELL", True),
            ("BTCUSDT", "MARKET", "SELL", False),
        ]
        async with h.session.post(
            f"{h.url}/_sim/trade", json={"api_key": API_KEY, "symbol": "BTCUSDT", "side": "BUY", "quantity": "0"}
        ) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == -4003


async def test_bad_fault_requests_are_rejected_and_unknown_ids_are_404() -> None:
    async with harness() as h:
        async with h.session.post(f"{h.url}/_sim/faults", json={"kind": "meteor"}) as resp:
            assert resp.status == 400 and "unknown fault kind" in (await resp.json())["error"]
        async with h.session.post(f"{h.url}/_sim/faults", json={"kind": "rate_limit", "status": 500}) as resp:
            assert resp.status == 400
        async with h.session.delete(f"{h.url}/_sim/faults/99") as resp:
            assert resp.status == 404
        assert await h.faults() == []
        await asyncio.sleep(0)


async def test_drop_ws_for_one_account_leaves_the_others_connected() -> None:
    async with harness() as h:
        mine = (await h.listen_key())[1]["listenKey"]
        theirs = (await h.listen_key(api_key="other-key"))[1]["listenKey"]
        async with (
            h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={mine}") as ws_mine,
            h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={theirs}") as ws_theirs,
        ):
            await h.inject("drop_ws", scope="user", api_key=API_KEY)
            assert (await ws_mine.receive(timeout=2)).type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            h.bus.publish_user("other-key", {"e": "ACCOUNT_UPDATE", "E": 1})
            assert await recv_json(ws_theirs) == {"e": "ACCOUNT_UPDATE", "E": 1}


async def test_a_cleared_pause_stops_withholding_at_once() -> None:
    async with harness() as h:
        async with h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m") as ws:
            fid = await h.inject("pause_market", candles=5, symbols=["BTCUSDT"])
            h.bus.publish_kline("BTCUSDT", kline_event("BTCUSDT", T0, closed=True))
            async with h.session.delete(f"{h.url}/_sim/faults/{fid}") as resp:
                assert (await resp.json())["status"] == "cleared"
            ev = kline_event("BTCUSDT", T0 + MINUTE_MS, closed=True)
            h.bus.publish_kline("BTCUSDT", ev)
            assert await recv_json(ws) == ev


async def test_freeze_ws_keeps_the_socket_open_but_silent() -> None:
    async with harness() as h:
        async with (
            h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m", autoping=False) as ws,
            h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m") as also_frozen,
        ):
            await h.inject("freeze_ws", scope="market")
            async with h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m") as fresh:
                ev = kline_event("BTCUSDT", T0, closed=True)
                h.bus.publish_kline("BTCUSDT", ev)
                assert await recv_json(fresh) == ev, "connections made after the fault are served"
                await ws.ping(b"anyone?")
                assert await silent(ws, 0.3), "no data and no pong"
                assert not ws.closed
                assert await silent(also_frozen, 0.05)


async def test_pause_user_loses_events_while_the_socket_stays_open() -> None:
    async with harness() as h:
        key = (await h.listen_key())[1]["listenKey"]
        async with h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={key}") as ws:
            fid = await h.inject("pause_user", seconds=60)
            h.bus.publish_user(API_KEY, {"e": "ORDER_TRADE_UPDATE", "E": 1})
            assert await silent(ws) and not ws.closed
            h.clock.jump(61_000)
            h.bus.publish_user(API_KEY, {"e": "ORDER_TRADE_UPDATE", "E": 2})
            assert await recv_json(ws) == {"e": "ORDER_TRADE_UPDATE", "E": 2}, "the lost event is not replayed"
            row = next(f for f in await h.faults() if f["id"] == fid)
            assert row["status"] == "done" and row["hits"] == 1
            fid = await h.inject("pause_user", count=1, api_key=API_KEY)
            h.bus.publish_user(API_KEY, {"e": "ACCOUNT_UPDATE", "E": 3})
            h.bus.publish_user(API_KEY, {"e": "ACCOUNT_UPDATE", "E": 4})
            assert await recv_json(ws) == {"e": "ACCOUNT_UPDATE", "E": 4}


async def test_fail_requests_on_a_stream_path_refuses_the_next_handshakes_only() -> None:
    async with harness() as h:
        await h.inject("fail_requests", path="/market/stream", count=2, status=503, code=-1008)
        await h.inject("rate_limit", seconds=60, status=429)  # REST only: streams are not rate limited
        url = f"{h.ws_url}/market/stream?streams=btcusdt@kline_1m"
        for _ in range(2):
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await h.session.ws_connect(url)
            assert err.value.status == 503
        async with h.session.ws_connect(url) as ws:
            ev = kline_event("BTCUSDT", T0, closed=True)
            h.bus.publish_kline("BTCUSDT", ev)
            assert await recv_json(ws) == {"stream": "btcusdt@kline_1m", "data": ev}


async def test_pause_user_with_events_loses_only_those_types() -> None:
    # A fill (TRADE_LITE) arrives for an order whose own events never do: the engine's "unknown fill" case.
    async with harness() as h:
        key = (await h.listen_key())[1]["listenKey"]
        async with h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={key}") as ws:
            await h.inject("pause_user", count=2, events=["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"])
            h.bus.publish_user(API_KEY, {"e": "TRADE_LITE", "E": 1})
            h.bus.publish_user(API_KEY, {"e": "ORDER_TRADE_UPDATE", "E": 2})
            h.bus.publish_user(API_KEY, {"e": "ACCOUNT_UPDATE", "E": 3})
            h.bus.publish_user(API_KEY, {"e": "ACCOUNT_UPDATE", "E": 4})
            assert await recv_json(ws) == {"e": "TRADE_LITE", "E": 1}
            assert await recv_json(ws) == {"e": "ACCOUNT_UPDATE", "E": 4}, "two lost, then the fault is done"
