"""The subscribe-style private stream (/private/stream): SUBSCRIBE a listenKey, events enveloped."""

from __future__ import annotations

import aiohttp
import orjson

from aegis.sim.wsconn import WsLimits
from tests.sim.wsharness import API_KEY, MINUTE_MS, harness, recv_json, silent


async def _request(ws: aiohttp.ClientWebSocketResponse, method: str, params: list[str] | None, req_id: object) -> object:
    body: dict[str, object] = {"method": method, "id": req_id}
    if params is not None:
        body["params"] = params
    await ws.send_str(orjson.dumps(body).decode())
    return await recv_json(ws)


async def test_subscribe_a_listen_key_then_events_arrive_in_the_combined_envelope() -> None:
    async with harness() as h:
        key = (await h.listen_key())[1]["listenKey"]
        async with h.session.ws_connect(f"{h.ws_url}/private/stream") as ws:
            h.bus.publish_user(API_KEY, {"e": "ACCOUNT_UPDATE", "E": 0})
            assert await silent(ws), "nothing before a subscription"
            uuid_id = "a5b4c7e0-0000-4000-8000-000000000001"  # Binance's SDK sends uuid strings
            assert await _request(ws, "SUBSCRIBE", [key], uuid_id) == {"result": None, "id": uuid_id}
            assert await _request(ws, "LIST_SUBSCRIPTIONS", None, 2) == {"result": [key], "id": 2}
            h.bus.publish_user(API_KEY, {"e": "ORDER_TRADE_UPDATE", "E": 1})
            assert await recv_json(ws) == {"stream": key, "data": {"e": "ORDER_TRADE_UPDATE", "E": 1}}
            assert await _request(ws, "UNSUBSCRIBE", [key], 3) == {"result": None, "id": 3}
            h.bus.publish_user(API_KEY, {"e": "ORDER_TRADE_UPDATE", "E": 2})
            assert await silent(ws)
            assert await _request(ws, "LIST_SUBSCRIPTIONS", None, 4) == {"result": [], "id": 4}
            assert await _request(ws, "GET_PROPERTY", ["combined"], 5) == {
                "error": {"code": 2, "msg": "Invalid request: unknown method"},
                "id": 5,
            }


async def test_url_form_pairs_each_listen_key_with_its_events() -> None:
    async with harness() as h:
        mine = (await h.listen_key())[1]["listenKey"]
        theirs = (await h.listen_key(api_key="other-key"))[1]["listenKey"]
        url = f"{h.ws_url}/private/stream?listenKey={mine}&events=ORDER_TRADE_UPDATE&listenKey={theirs}&events=ACCOUNT_UPDATE"
        async with h.session.ws_connect(url) as ws:
            for api_key in (API_KEY, "other-key"):
                h.bus.publish_user(api_key, {"e": "ACCOUNT_UPDATE", "E": 1})
                h.bus.publish_user(api_key, {"e": "ORDER_TRADE_UPDATE", "E": 2})
            assert [await recv_json(ws), await recv_json(ws)] == [
                {"stream": mine, "data": {"e": "ORDER_TRADE_UPDATE", "E": 2}},
                {"stream": theirs, "data": {"e": "ACCOUNT_UPDATE", "E": 1}},
            ]
            assert await silent(ws)


async def test_an_expired_key_ends_its_subscription_and_the_last_one_ends_the_connection() -> None:
    async with harness() as h:
        mine = (await h.listen_key())[1]["listenKey"]
        theirs = (await h.listen_key(api_key="other-key"))[1]["listenKey"]
        async with h.session.ws_connect(f"{h.ws_url}/private/stream") as ws:
            await _request(ws, "SUBSCRIBE", [mine, theirs], 1)
            await h.inject("expire_listen_key", api_key="other-key")
            expired = await recv_json(ws)
            assert expired["stream"] == theirs and expired["data"]["e"] == "listenKeyExpired"
            assert expired["data"]["listenKey"] == theirs
            h.bus.publish_user("other-key", {"e": "ACCOUNT_UPDATE", "E": 1})
            h.bus.publish_user(API_KEY, {"e": "ACCOUNT_UPDATE", "E": 2})
            assert await recv_json(ws) == {"stream": mine, "data": {"e": "ACCOUNT_UPDATE", "E": 2}}
            h.clock.jump(61 * MINUTE_MS)  # mine lapses too: 60 minutes without a keepalive
            last = await recv_json(ws)
            assert last["stream"] == mine and last["data"]["e"] == "listenKeyExpired"
            assert (await ws.receive(timeout=2)).type is aiohttp.WSMsgType.CLOSE


async def test_a_key_that_does_not_exist_is_taken_silently_and_delivers_nothing() -> None:
    async with harness() as h:
        key = (await h.listen_key())[1]["listenKey"]
        assert (await h.listen_key("DELETE"))[0] == 200
        async with h.session.ws_connect(f"{h.ws_url}/private/stream") as ws:
            assert await _request(ws, "SUBSCRIBE", [key, "x" * 64], 1) == {"result": None, "id": 1}
            assert await _request(ws, "LIST_SUBSCRIPTIONS", None, 2) == {"result": [], "id": 2}
            h.bus.publish_user(API_KEY, {"e": "ACCOUNT_UPDATE", "E": 1})
            assert await silent(ws)


async def test_the_24_hour_cut_applies_to_the_subscribe_style_connection() -> None:
    async with harness(limits=WsLimits(ping_min_wall_s=0.05)) as h:
        key = (await h.listen_key())[1]["listenKey"]
        async with h.session.ws_connect(f"{h.ws_url}/private/stream") as ws:
            await _request(ws, "SUBSCRIBE", [key], 1)
            for _ in range(24 * 2):
                h.clock.jump(30 * MINUTE_MS - 1000)
                assert (await h.listen_key("PUT"))[0] == 200
            h.bus.publish_user(API_KEY, {"e": "ACCOUNT_UPDATE", "E": 1})
            assert (await recv_json(ws))["stream"] == key
            h.clock.jump(MINUTE_MS)
            assert (await ws.receive(timeout=2)).type is aiohttp.WSMsgType.CLOSE


async def test_the_ws_route_takes_subscribe_too_and_sends_events_bare() -> None:
    async with harness() as h:
        key = (await h.listen_key())[1]["listenKey"]
        other = (await h.listen_key(api_key="other-key"))[1]["listenKey"]
        async with h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={key}") as ws:
            await _request(ws, "SUBSCRIBE", [other], 1)
            h.bus.publish_user("other-key", {"e": "ACCOUNT_UPDATE", "E": 1})
            assert await recv_json(ws) == {"e": "ACCOUNT_UPDATE", "E": 1}
