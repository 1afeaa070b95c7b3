"""The engine's two ways to meet ``aegis.sim``: embedded in this process, or a separate ``aegis sim``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
from loguru import logger

from aegis.clock import Clock
from aegis.engine.startup import StartupError

if TYPE_CHECKING:
    from aegis.config import Settings

__all__ = ["MIN_SIGNING_SLACK_WALL_MS", "follow_sim_clock", "start_embedded_sim"]

# A signed request needs this much wall time to reach the exchange within recvWindow (loopback and
# a busy loop included); a simulator so fast that recvWindow lasts less is refused at start-up.
MIN_SIGNING_SLACK_WALL_MS = 50.0


async def start_embedded_sim(settings: Settings, clock: Clock) -> Any:
    """The offline default: the simulator runs in this process, reached over loopback HTTP/WS.

    Both sides run on the loop's virtual time, paced at ``sim.speed`` by ``aegis.engine.run``, so
    the simulator itself runs at speed 1, and ``clock`` (the engine's) is set to its exchange time.
    Returns the started ``SimServer``.
    """
    from aegis.sim.config import DEMO_ACCOUNT, AccountSpec, SimConfig
    from aegis.sim.server import SimServer

    sim = settings.sim
    key, secret = settings.credentials()
    accounts: tuple[AccountSpec, ...] = (DEMO_ACCOUNT,)
    if key.get_secret_value() != DEMO_ACCOUNT.api_key:  # configured keys get their own account
        accounts += (AccountSpec(key.get_secret_value(), secret.get_secret_value()),)
    config = SimConfig(
        speed=1.0, accounts=accounts, data_paths=(sim.data,) if sim.data is not None else (),
        start_ms=sim.start_ms, replay_aligned=sim.replay_aligned, fill_model=sim.fill_model,
    )  # fmt: skip
    server = SimServer(config, host=sim.host, port=sim.port)
    try:
        await server.start()
    except OSError as exc:
        raise StartupError(f"sim.port: cannot listen on {sim.host}:{sim.port}: {exc.strerror or exc}") from None
    clock.set_rate(1.0, server.sim.clock.now_ms())
    logger.info("embedded simulator on {} (exchange time at up to {:g}x)", server.rest_url, sim.speed)
    return server


async def follow_sim_clock(clock: Clock, sim_url: str, recv_window_ms: int) -> None:
    """A separate ``aegis sim`` may run faster than the wall: run ``clock`` at its speed, or refuse
    to start when no signed request could reach it within recvWindow."""
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{sim_url}/_sim/state") as resp:
            body = await resp.json(content_type=None)
        speed, now_ms = float(body["speed"]), int(body["clock_ms"])
    except Exception as exc:
        raise StartupError(f"sim.url: {sim_url} does not answer as an aegis simulator ({exc})") from None
    if recv_window_ms / speed < MIN_SIGNING_SLACK_WALL_MS:
        raise StartupError(
            f"sim.url: the simulator runs at {speed:g}x, so recvWindow ({recv_window_ms} ms) lasts "
            f"{recv_window_ms / speed:.1f} ms of wall time and signed requests would be refused (-1021); "
            f"run it at <= {recv_window_ms / MIN_SIGNING_SLACK_WALL_MS:.0f}x or raise rest.recv_window_ms"
        )
    clock.set_rate(speed, now_ms)
    logger.info("following the simulator's clock at {:g}x", speed)
