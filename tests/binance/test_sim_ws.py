"""WsConnection end to end against aegis.sim: klines, user events, drop_ws, listenKey expiry."""

from __future__ import annotations

from decimal import Decimal

from aegis.binance import ConnectEvent, WsConnection, market_stream_url, user_stream_url
from aegis.binance.parse import parse_kline_frame, parse_user_event
from aegis.domain import KlineEvent, ListenKeyExpired, OrderRequest, OrderType, OrderUpdate, Side, UserEvent
from tests.harness import admin_for, engine_clock, rest_for, running_sim, until


async def test_kline_stream_delivers_candles_and_a_dropped_socket_reconnects_and_reports() -> None:
    async with running_sim(speed=60.0) as sim, admin_for(sim) as admin:
        klines: list[KlineEvent] = []
        connects: list[ConnectEvent] = []
        conn = WsConnection(
            market_stream_url(sim.ws_url, ["btcusdt@kline_1m"]),
            parse_kline_frame,
            klines.append,
            engine_clock(sim),
            name="market",
            on_connect=connects.append,
            backoff_initial_s=0.5,
            backoff_max_s=2.0,
        )
        conn.start()
        await until(lambda: len(klines) >= 2, within=5)
        assert klines[0].candle.symbol == "BTCUSDT" and isinstance(klines[0].candle.close, Decimal)
        await admin.inject("drop_ws", scope="market")
        await until(lambda: len(connects) == 2, within=5)
        seen = len(klines)
        await until(lambda: len(klines) > seen, within=5)  # frames flow again on the new socket
        await conn.close()
        assert connects[1].reconnect and connects[1].reason and conn.parse_errors == 0
        assert connects[0].reconnect is False


async def test_user_stream_events_arrive_and_expiry_and_drops_are_visible_to_the_owner() -> None:
    async with running_sim(speed=60.0) as sim, admin_for(sim) as admin, rest_for(sim) as rest:
        key = await rest.create_listen_key()
        events: list[UserEvent | None] = []
        connects: list[ConnectEvent] = []
        conn = WsConnection(
            user_stream_url(sim.ws_url, key),
            parse_user_event,
            events.append,
            rest.server_clock,
            name="user",
            on_connect=connects.append,
            stale_after_s=None,  # a quiet account is normal; liveness comes from the listenKey
            backoff_initial_s=0.5,
            backoff_max_s=2.0,
        )
        conn.start()
        await until(conn.connected.is_set)
        await rest.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, Decimal("0.010"), "ws-1"))
        await until(lambda: any(isinstance(e, OrderUpdate) and e.fill for e in events))
        fill_event = next(e for e in events if isinstance(e, OrderUpdate) and e.fill)
        assert fill_event.order.client_order_id == "ws-1"

        await admin.inject("drop_ws", scope="user")
        await until(lambda: len(connects) == 2, within=5)
        assert connects[1].reconnect

        await admin.inject("expire_listen_key")
        await until(lambda: any(isinstance(e, ListenKeyExpired) for e in events), within=5)
        expired = next(e for e in events if isinstance(e, ListenKeyExpired))
        assert expired.listen_key == key
        new_key = await rest.create_listen_key()
        assert new_key != key
        conn.set_url(user_stream_url(sim.ws_url, new_key))
        await until(lambda: connects[-1].url.endswith(new_key), within=5)
        seen = len(events)
        await rest.place_order(OrderRequest("BTCUSDT", Side.SELL, OrderType.MARKET, Decimal("0.010"), "ws-2"))
        await until(lambda: any(isinstance(e, OrderUpdate) for e in events[seen:]))  # the new key delivers
        await conn.close()
