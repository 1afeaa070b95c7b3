"""Market streams as a plain aiohttp client sees them: routes, modes, methods, limits, fan-out."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from aegis.sim.wsconn import WsLimits
from tests.sim.wsharness import MINUTE_MS, harness, kline_event, recv_json, silent

T0 = 1_700_000_040_000


async def test_combined_stream_wraps_each_event_with_its_stream_name() -> None:
    async with harness() as h:
        async with h.session.ws_connect(f"{h.ws_url}/market/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m") as ws:
            assert set(h.watched) == {"BTCUSDT", "ETHUSDT"}
            ev = kline_event("BTCUSDT", T0, closed=False)
            h.bus.publish_kline("BTCUSDT", ev)
            h.bus.publish_kline("ETHUSDT", kline_event("ETHUSDT", T0, closed=True))
            assert await recv_json(ws) == {"stream": "btcusdt@kline_1m", "data": ev}
            second = await recv_json(ws)
            assert second["stream"] == "ethusdt@kline_1m" and second["data"]["k"]["x"] is True


async def test_ccxt_style_subscribe_on_index_path_gets_unwrapped_events() -> None:
    async with harness() as h:
        async with h.session.ws_connect(f"{h.ws_url}/market/ws/0") as ws:
            await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":1}')
            assert await recv_json(ws) == {"result": None, "id": 1}
            await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":2}')
            assert await recv_json(ws) == {"result": ["btcusdt@kline_1m"], "id": 2}
            ev = kline_event("BTCUSDT", T0, closed=True)
            h.bus.publish_kline("BTCUSDT", ev)
            assert await recv_json(ws) == ev
            await ws.send_str('{"method":"UNSUBSCRIBE","params":["btcusdt@kline_1m"],"id":3}')
            assert await recv_json(ws) == {"result": None, "id": 3}
            h.bus.publish_kline("BTCUSDT", kline_event("BTCUSDT", T0 + MINUTE_MS, closed=False))
            assert await silent(ws)


async def test_bad_requests_get_binance_error_objects() -> None:
    async with harness() as h:
        async with h.session.ws_connect(f"{h.ws_url}/market/ws") as ws:
            await ws.send_str("{not json")
            assert (await recv_json(ws))["error"]["code"] == 3
            await ws.send_str('{"method":"SUBSCRIBE","params":"btcusdt@kline_1m","id":7}')
            reply = await recv_json(ws)
            assert reply["id"] == 7 and reply["error"]["code"] == 1
            await ws.send_str('{"method":"SET_PROPERTY","params":["combined",true],"id":8}')
            assert await recv_json(ws) == {"result": None, "id": 8}
            await ws.send_str('{"method":"GET_PROPERTY","params":["combined"],"id":9}')
            assert await recv_json(ws) == {"result": True, "id": 9}


async def test_public_prefix_accepts_kline_requests_but_stays_silent() -> None:
    async with harness() as h:
        async with (
            h.session.ws_connect(f"{h.ws_url}/public/ws/btcusdt@kline_1m") as public,
            h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m") as market,
        ):
            await public.send_str('{"method":"SUBSCRIBE","params":["ethusdt@kline_1m"],"id":1}')
            assert await recv_json(public) == {"result": None, "id": 1}
            h.bus.publish_kline("BTCUSDT", kline_event("BTCUSDT", T0, closed=True))
            assert (await recv_json(market))["s"] == "BTCUSDT"
            assert await silent(public)


async def test_legacy_routes_still_serve_klines() -> None:
    async with harness() as h:
        async with (
            h.session.ws_connect(f"{h.ws_url}/ws/btcusdt@kline_1m") as ws_mode,
            h.session.ws_connect(f"{h.ws_url}/stream?streams=btcusdt@kline_1m") as combined,
        ):
            ev = kline_event("BTCUSDT", T0, closed=True)
            h.bus.publish_kline("BTCUSDT", ev)
            assert await recv_json(ws_mode) == ev
            assert await recv_json(combined) == {"stream": "btcusdt@kline_1m", "data": ev}


async def test_continuous_kline_for_python_binance_has_pair_and_contract_type() -> None:
    async with harness() as h:
        async with h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt_perpetual@continuousKline_1m") as ws:
            assert h.watched == ["BTCUSDT"]
            ev = kline_event("BTCUSDT", T0, closed=True)
            h.bus.publish_kline("BTCUSDT", ev)
            got = await recv_json(ws)
            assert got["e"] == "continuous_kline" and got["ps"] == "BTCUSDT" and got["ct"] == "PERPETUAL"
            assert "s" not in got["k"] and got["k"]["t"] == T0 and got["k"]["x"] is True


async def test_more_than_1024_streams_is_refused() -> None:
    async with harness() as h:
        async with h.session.ws_connect(f"{h.ws_url}/market/ws") as ws:
            names = [f"s{i}usdt@kline_1m" for i in range(1025)]
            await ws.send_str(orjson.dumps({"method": "SUBSCRIBE", "params": names, "id": 1}).decode())
            assert (await recv_json(ws))["error"]["code"] == 2
            await ws.send_str(orjson.dumps({"method": "SUBSCRIBE", "params": names[:1024], "id": 2}).decode())
            assert await recv_json(ws) == {"result": None, "id": 2}


async def test_more_than_10_incoming_messages_per_second_closes_the_connection() -> None:
    async with harness() as h:
        async with h.session.ws_connect(f"{h.ws_url}/market/ws") as ws:
            for i in range(12):
                await ws.send_str(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
            replies = 0
            while True:
                msg = await ws.receive(timeout=2)
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                replies += 1
            assert replies == 10
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.POLICY_VIOLATION


async def test_slow_subscriber_is_dropped_and_does_not_stall_the_others() -> None:
    async with harness(limits=WsLimits(queue_max=50)) as h:
        async with (
            h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m") as fast,
            h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m") as slow,
        ):
            total = 10_000
            received = 0

            async def reader() -> None:
                nonlocal received
                while received < total:
                    await recv_json(fast)
                    received += 1

            task = asyncio.create_task(reader())
            for i in range(total):
                h.bus.publish_kline("BTCUSDT", kline_event("BTCUSDT", T0, closed=False, close=f"{i}." + "0" * 2000))
                if i % 25 == 0:
                    await asyncio.sleep(0)
            await asyncio.wait_for(task, 20)
            assert received == total
            msgs = []
            while True:
                msg = await slow.receive(timeout=10)
                msgs.append(msg.type)
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
            assert len(msgs) < total, "the slow reader should have been cut off"
            assert msgs[-1] in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            assert h.hub.stats()["drops"] == {"outbox overflow": 1}


async def test_connection_is_cut_after_24_simulated_hours() -> None:
    async with harness(speed=1.0, limits=WsLimits(ping_min_wall_s=0.05)) as h:
        async with h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m") as ws:
            h.clock.jump(24 * 60 * MINUTE_MS - MINUTE_MS)
            await asyncio.sleep(0.2)
            ev = kline_event("BTCUSDT", T0, closed=True)
            h.bus.publish_kline("BTCUSDT", ev)
            assert await recv_json(ws) == ev
            h.clock.jump(2 * MINUTE_MS)
            msg = await ws.receive(timeout=2)
            assert msg.type is aiohttp.WSMsgType.CLOSE


async def test_server_pings_and_drops_a_client_that_never_pongs() -> None:
    limits = WsLimits(ping_min_wall_s=0.25, pong_timeout_floor_s=1.0)
    async with harness(speed=3600.0, limits=limits) as h:
        async with (
            h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m", autoping=False) as mute,
            h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m") as healthy,
        ):
            # aiohttp answers pings inside receive(), so the healthy client keeps reading.
            inbox: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()

            async def read_healthy() -> None:
                while True:
                    msg = await healthy.receive()
                    inbox.put_nowait(msg)
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        return

            reader = asyncio.create_task(read_healthy())
            first = await mute.receive(timeout=2)
            assert first.type is aiohttp.WSMsgType.PING
            while True:
                msg = await mute.receive(timeout=3)
                if msg.type is not aiohttp.WSMsgType.PING:
                    break
            assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            await asyncio.sleep(1.5)  # well past the pong timeout for the healthy one too
            ev = kline_event("BTCUSDT", T0, closed=True)
            h.bus.publish_kline("BTCUSDT", ev)
            got = await asyncio.wait_for(inbox.get(), 2)
            reader.cancel()
            assert got.type is aiohttp.WSMsgType.TEXT and orjson.loads(got.data) == ev


async def test_a_pong_must_echo_the_ping_payload() -> None:
    limits = WsLimits(ping_min_wall_s=0.25, pong_timeout_floor_s=0.6)
    async with harness(speed=3600.0, limits=limits) as h:
        async with h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m", autoping=False) as ws:
            while True:
                msg = await ws.receive(timeout=3)
                if msg.type is not aiohttp.WSMsgType.PING:
                    break
                assert msg.data, "pings carry a payload to echo"
                await ws.pong(b"not-" + msg.data)
            assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def test_streams_admin_view_counts_connections_and_subscriptions() -> None:
    async with harness() as h:
        key = (await h.listen_key())[1]["listenKey"]
        async with (
            h.session.ws_connect(f"{h.ws_url}/market/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m"),
            h.session.ws_connect(f"{h.ws_url}/market/ws/btcusdt@kline_1m"),
            h.session.ws_connect(f"{h.ws_url}/private/ws?listenKey={key}"),
        ):
            async with h.session.get(f"{h.url}/_sim/streams") as resp:
                body = await resp.json()
            assert body["market"]["connections"] == 2
            assert body["market"]["streams"] == {"btcusdt@kline_1m": 2, "ethusdt@kline_1m": 1}
            assert body["user"]["connections"] == 1 and body["user"]["keys"][0]["state"] == "active"
        await asyncio.sleep(0.1)
        assert h.hub.stats()["connections"] == 0 and h.hub.watched == frozenset()
