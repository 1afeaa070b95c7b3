"""The user data stream when the socket stays open but events stop: detected, reconnected, reconciled.

Against the simulator on a fast clock (as tests/test_userstream_sim.py), with the engine's own
``Reconciler`` taking the requests. Two ways events stop while the socket looks fine:

* ``freeze_ws`` scope=user: half-open, nothing more goes out (no data, no pings, no pongs);
* ``pause_user``: the socket is alive (pings, pongs) but the account's events are lost.

Either way the exchange's state moves (an out-of-band trade) and the store must end equal to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from aegis.reconcile.reconciler import Reconciler
from tests.test_userstream_sim import HOUR, SYMBOL, Env, stream_env


@contextlib.asynccontextmanager
async def reconciled_env(**stream_kwargs: Any) -> AsyncIterator[tuple[Env, Reconciler]]:
    """``stream_env`` with the engine's Reconciler (not the test stand-in) taking the requests."""
    async with stream_env(reconciler="none", **stream_kwargs) as env:
        reconciler = Reconciler(
            env.rest, env.rest.server_clock, env.stream, env.state, env.stream.reconcile, env.clock
        )
        task = asyncio.create_task(reconciler.run(), name="reconcile")
        try:
            await env.until(lambda: reconciler.runs >= 1, 2.0, "start-up reconciliation")
            yield env, reconciler
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def exchange_position(env: Env) -> Decimal:
    truth = await env.truth()
    return sum((Decimal(p["positionAmt"]) for p in truth["positions"] if p["symbol"] == SYMBOL), Decimal(0))


def store_position(env: Env) -> Decimal:
    pos = env.state.snapshot().positions.get(SYMBOL)
    return pos.amount if pos is not None else Decimal(0)


async def test_a_frozen_user_socket_is_reconnected_and_the_trade_reconciled() -> None:
    async with reconciled_env(silence_threshold_s=HOUR) as (env, _):
        stream = env.stream
        before = await exchange_position(env)
        assert store_position(env) == before
        await env.fault(kind="freeze_ws", scope="user")
        started = time.monotonic()
        order_id = await env.trade("BUY", "0.005")  # its events go nowhere: the socket is frozen
        # Silence threshold 1 h = 0.5 s wall; the probe's pong wait is floored at 1 s wall. The
        # aiohttp heartbeat alone would take 15 s wall here (30 exchange hours blind).
        await env.until(lambda: stream.reconnects >= 1, 5.0, "the frozen connection replaced")
        assert time.monotonic() - started < 5.0
        assert "no pong" in str(stream.status()["last_disconnect_reason"])
        assert env.reconnect_requests(), [r.reason for r in stream.reconcile.history]
        target = before + Decimal("0.005")
        await env.until(
            lambda: stream.reconcile.pending == 0 and store_position(env) == target, 2.0, "reconciled"
        )
        await asyncio.sleep(0.05)  # let a reconciliation taken just now finish
        assert store_position(env) == await exchange_position(env) == target
        assert not env.filled(order_id)  # the stream never saw it: the reconciliation did
        await env.assert_state_matches_exchange(settle=False)
        again = await env.trade("SELL", "0.005")  # the new connection delivers events again
        await env.until(lambda: env.filled(again), 1.0, "fill seen on the new connection")
        assert store_position(env) == await exchange_position(env) == before


async def test_events_lost_on_a_live_socket_are_found_by_the_silence_check_and_reconciled() -> None:
    async with reconciled_env(silence_threshold_s=HOUR) as (env, reconciler):
        stream = env.stream
        before = await exchange_position(env)
        assert store_position(env) == before
        await env.fault(kind="pause_user", count=10)  # more than one trade's events
        order_id = await env.trade("SELL", "0.007")  # the exchange moves; the stream says nothing
        await env.until(
            lambda: any(r.reason.startswith("silent and REST disagrees") for r in stream.reconcile.history),
            3.0,
            "the silence cross-check finds the difference",
        )
        reasons = [r.reason for r in stream.reconcile.history if r.reason.startswith("silent")]
        assert "position BTCUSDT" in reasons[0], reasons
        await env.until(lambda: store_position(env) == before - Decimal("0.007"), 2.0, "reconciled")
        assert store_position(env) == await exchange_position(env)
        assert not env.filled(order_id)  # the events never came: the reconciliation did it
        assert reconciler.corrections >= 1
        await env.assert_state_matches_exchange(settle=False)
        # The socket answered the probe: pongs flow, so it is not reconnected for one lost batch.
        assert stream.reconnects == 0, stream.status()["last_disconnect_reason"]
