"""MarketFeed against a half-open market socket: connected, but nothing more comes through.

``freeze_ws`` scope=market leaves the TCP connection up while the simulator sends no klines,
no pings and no pongs. An open socket does not prove that events are flowing: the staleness
watchdog must notice the silence, reconnect, and the catch-up must fetch what was missed, so
the store ends equal to the simulator's own GET /fapi/v1/klines (as in tests/test_market_e2e.py).
"""

from __future__ import annotations

import time

from tests.test_market_e2e import SYMBOLS, running


async def test_a_frozen_market_socket_is_detected_as_stale_reconnected_and_backfilled() -> None:
    async with running() as rig:  # stale_after_s=300 exchange seconds (0.5 s wall, floored to 1 s)
        await rig.assert_complete()
        assert rig.feed.status()["reconnects"] == 0
        await rig.fault("freeze_ws", scope="market")
        assert [f["hits"] for f in await rig.faults()] == [1]  # the feed's one connection froze
        started = time.monotonic()
        await rig.sim_minutes(4)  # candles close on the exchange while the socket says nothing
        while rig.feed.status()["reconnects"] < 1:
            assert time.monotonic() - started < 5.0, f"frozen socket never replaced: {rig.feed.status()}"
            await rig.sim_minutes(0.5)
        conn = rig.feed.connections[0]
        assert conn.last_disconnect_reason.startswith("stale: no message"), conn.last_disconnect_reason
        await rig.assert_complete()
        status = rig.feed.status()
        assert status["gaps_backfilled"] >= 3 and status["holes"] == 0, status
        assert all(rig.feed.in_sync(s) for s in SYMBOLS)
