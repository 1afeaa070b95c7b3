"""The user data stream as clients see it: listenKey REST semantics, lifetime, forwarding."""

from __future__ import annotations

import asyncio

import aiohttp

from aegis.sim.wsconn import WsLimits
from tests.sim.wsharness import API_KEY, MINUTE_MS, harness, recv_json, silent


async def test_post_returns_the_active_key_and_put_delete_follow_binance() -> None:
    async with harness() as h:
        status, first = await h.listen_key("POST")
        assert status == 200 and len(first["listenKey"]) == 64
        assert (await h.listen_key("POST"))[1] == first, "an active key is returned again, not replaced"
        assert (await h.listen_key("PUT"))[1] == first
        assert (await h.listen_key("DELETE")) == (200, {})
        assert await h.listen_key("PUT") == (400, {"code": -1125, "msg": "This listenKey does not exist."})
        status, second = await h.listen_key("POST")
        assert status == 200 and second["listenKey"] != first["listenKey"]


async def test_listen_key_needs_a_known_api_key() -> None:
    async with harness() as h:
        status, body = await h.listen_key("POST", api_key="nobody")
        assert status == 401 and body["code"] == -2015
        async with h.session.post(f"{h.url}/fapi/v1/listenKey") as resp:
            assert resp.status == 401 and (await resp.json())["code"] == -2014


async def test_events_are_forwarded_in_publish_order_only_to_that_account() -> None:
    async with harness() as h:
        key = (await h.listen_key())[1]["listenKey"]
        other = (await h.listen_key(api_key="other-key"))[1]["listenKey"]
        async with (
            h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={key}") as ws,
            h.session.ws_connect(f"{h.ws_url}/ws/{key}") as legacy,
            h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={other}") as foreign,
        ):
            sequence = [{"e": e, "E": i} for i, e in enumerate(["TRADE_LITE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE"])]
            for event in sequence:
                h.bus.publish_user(API_KEY, event)
            assert [await recv_json(ws) for _ in sequence] == sequence
            assert [await recv_json(legacy) for _ in sequence] == sequence
            assert await silent(foreign)


async def test_events_parameter_filters_event_types() -> None:
    async with harness() as h:
        key = (await h.listen_key())[1]["listenKey"]
        async with h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE/ACCOUNT_UPDATE") as ws:
            h.bus.publish_user(API_KEY, {"e": "TRADE_LITE", "E": 1})
            h.bus.publish_user(API_KEY, {"e": "ACCOUNT_UPDATE", "E": 2})
            assert await recv_json(ws) == {"e": "ACCOUNT_UPDATE", "E": 2}


async def test_unknown_listen_key_is_refused() -> None:
    async with harness() as h:
        try:
            async with h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={'x' * 64}"):
                raise AssertionError("connected with a key that was never issued")
        except aiohttp.WSServerHandshakeError as err:
            assert err.status == 400


async def test_key_without_keepalive_expires_at_60_simulated_minutes() -> None:
    async with harness(speed=3600.0) as h:  # one simulated hour per wall second
        created = h.clock.now_ms()
        key = (await h.listen_key())[1]["listenKey"]
        async with h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={key}") as ws:
            expired = await recv_json(ws, wait=3)
            assert expired["e"] == "listenKeyExpired" and expired["listenKey"] == key
            # not before 60 minutes; the upper bound only allows for event-loop lag on a busy machine
            assert created + 60 * MINUTE_MS <= int(expired["E"]) < created + 70 * MINUTE_MS
            assert (await ws.receive(timeout=2)).type is aiohttp.WSMsgType.CLOSE
        h.bus.publish_user(API_KEY, {"e": "ORDER_TRADE_UPDATE", "E": 1})
        assert (await h.listen_key("PUT"))[1]["code"] == -1125


async def test_keepalive_at_50_minutes_extends_the_key() -> None:
    async with harness() as h:
        key = (await h.listen_key())[1]["listenKey"]
        async with h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={key}") as ws:
            h.clock.jump(50 * MINUTE_MS)
            assert (await h.listen_key("PUT"))[1] == {"listenKey": key}
            h.clock.jump(15 * MINUTE_MS)  # 65 minutes after creation, 15 after the keepalive
            h.bus.publish_user(API_KEY, {"e": "ACCOUNT_UPDATE", "E": 1})
            assert await recv_json(ws) == {"e": "ACCOUNT_UPDATE", "E": 1}
            h.clock.jump(46 * MINUTE_MS)  # 61 minutes after the keepalive
            expired = await recv_json(ws)
            assert expired["e"] == "listenKeyExpired"
            assert (await ws.receive(timeout=2)).type is aiohttp.WSMsgType.CLOSE


async def test_user_connection_is_cut_after_24_hours_even_with_keepalives() -> None:
    async with harness(limits=WsLimits(ping_min_wall_s=0.05)) as h:
        key = (await h.listen_key())[1]["listenKey"]
        async with h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={key}") as ws:
            for _ in range(24 * 2):
                h.clock.jump(30 * MINUTE_MS - 1000)
                assert (await h.listen_key("PUT"))[0] == 200
            await asyncio.sleep(0.2)
            h.bus.publish_user(API_KEY, {"e": "ACCOUNT_UPDATE", "E": 1})
            assert await recv_json(ws) == {"e": "ACCOUNT_UPDATE", "E": 1}
            h.clock.jump(MINUTE_MS)
            msg = await ws.receive(timeout=2)
            assert msg.type is aiohttp.WSMsgType.CLOSE


async def test_keepalive_on_the_fast_clock_moves_expiry_to_60_minutes_after_it() -> None:
    async with harness(speed=3600.0) as h:  # one simulated minute every 1/60 s
        created = h.clock.now_ms()
        key = (await h.listen_key())[1]["listenKey"]
        async with h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={key}") as ws:
            await h.clock.sleep_until(created + 50 * MINUTE_MS)
            before_put = h.clock.now_ms()
            assert (await h.listen_key("PUT"))[0] == 200
            after_put = h.clock.now_ms()
            expired = await recv_json(ws, wait=5)
            assert expired["e"] == "listenKeyExpired"
            assert before_put + 60 * MINUTE_MS <= int(expired["E"]) < after_put + 70 * MINUTE_MS


class _Recorder:
    """Stands in for a WsConn in a unit test of the registry."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closing = False

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def close_after_flush(self) -> None:
        self.closing = True


async def test_a_key_that_lapses_during_the_handshake_is_reported_on_the_new_connection() -> None:
    from aegis.sim.clock import SimClock
    from aegis.sim.listenkeys import ListenKeys, UserConn

    clock = SimClock()
    keys = ListenKeys(clock)
    lk = keys.create_or_extend(API_KEY)
    clock.jump(60 * MINUTE_MS)  # lapsed, but nobody looked yet
    late = UserConn(_Recorder())  # type: ignore[arg-type]
    keys.attach(late, lk)
    later = UserConn(_Recorder())  # type: ignore[arg-type]
    keys.attach(later, lk)  # already marked expired by then
    for uc in (late, later):
        assert uc.conn.closing and b'"e":"listenKeyExpired"' in uc.conn.sent[0]
    keys.stop()


async def test_one_private_connection_can_carry_several_listen_keys() -> None:
    async with harness() as h:
        mine = (await h.listen_key())[1]["listenKey"]
        theirs = (await h.listen_key(api_key="other-key"))[1]["listenKey"]
        async with h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={mine}&listenKey={theirs}") as ws:
            h.bus.publish_user(API_KEY, {"e": "ACCOUNT_UPDATE", "E": 1})
            h.bus.publish_user("other-key", {"e": "ACCOUNT_UPDATE", "E": 2})
            assert [await recv_json(ws), await recv_json(ws)] == [{"e": "ACCOUNT_UPDATE", "E": 1}, {"e": "ACCOUNT_UPDATE", "E": 2}]
            await h.inject("expire_listen_key", api_key="other-key")
            expired = await recv_json(ws)
            assert expired["e"] == "listenKeyExpired" and expired["listenKey"] == theirs
