"""The simulator on loopback: the aiohttp app, a test handle and the ``aegis sim`` entry point."""

from __future__ import annotations

import asyncio
import signal
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from aegis.sim import control, faults, rest, streams
from aegis.sim.config import SimConfig
from aegis.sim.simulator import Simulator

DEFAULT_HOST = "127.0.0.1"


def build_app(sim: Simulator) -> web.Application:
    """REST routes and /_sim admin, then the WebSocket side and fault injection (they may add
    middlewares and routes)."""
    app = web.Application(client_max_size=1024**2)
    rest.install(app, sim)
    control.install(app, sim)
    streams.install(app, sim)
    faults.install(app, sim)
    control.apply_schedule(app, sim.config.fault_schedule)
    return app


class SimServer:
    """``async with SimServer(SimConfig(...)) as sim:`` — a running simulator on 127.0.0.1.

    ``port=0`` picks a free port. Offers ``rest_url``, ``ws_url``, ``sim`` and the admin helpers
    ``state()`` / ``set_clock()`` (which go through the real /_sim HTTP endpoints).
    """

    def __init__(self, config: SimConfig | None = None, *, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.config = config or SimConfig()
        self.host = host
        self.port = port
        self.sim = Simulator(self.config)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> None:
        app = build_app(self.sim)
        # Candles are loaded (off the loop) before the first request can arrive and read them on it.
        await self.sim.start()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await self.sim.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def state(self) -> dict[str, Any]:
        """GET /_sim/state."""
        async with self._client().get(f"{self.rest_url}/_sim/state") as r:
            r.raise_for_status()
            data: dict[str, Any] = await r.json()
            return data

    async def set_clock(self, speed: float | None = None, jump_ms: int | None = None) -> dict[str, Any]:
        """POST /_sim/clock; a forward jump is fully walked (candles closed, orders matched) on return."""
        body: dict[str, Any] = {}
        if speed is not None:
            body["speed"] = speed
        if jump_ms is not None:
            body["jump_ms"] = jump_ms
        async with self._client().post(f"{self.rest_url}/_sim/clock", json=body) as r:
            r.raise_for_status()
            data: dict[str, Any] = await r.json()
            return data


async def serve_forever(config: SimConfig, host: str = DEFAULT_HOST, port: int = 8765) -> None:
    """Run the simulator on ``host:port`` until SIGTERM/SIGINT; prints the REST and WS base URLs.

    This is what ``aegis sim --port P [--speed X] [--data PATH] [--account KEY:SECRET[:BAL]]``
    calls, after building ``config`` (``AccountSpec.parse`` reads the --account form).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    async with SimServer(config, host=host, port=port) as server:
        keys = ", ".join(a.api_key for a in config.accounts)
        print(
            f"aegis.sim REST {server.rest_url}  WS {server.ws_url}  speed x{config.speed}  accounts: {keys}",
            flush=True,
        )
        await stop.wait()
    print("aegis.sim stopped", flush=True)


def serve(config: SimConfig, host: str = DEFAULT_HOST, port: int = 8765) -> int:
    """Blocking wrapper around :func:`serve_forever` (uvloop when installed); returns an exit code."""
    try:
        import uvloop

        uvloop.run(serve_forever(config, host, port))
    except ImportError:  # pragma: no cover
        asyncio.run(serve_forever(config, host, port))
    return 0
