"""Loopback HTTP endpoint through which operators, Prometheus and tests observe a running engine.

``/health`` is 503 with every reason while anything is wrong (readiness: page someone);
``/health/live`` is 200 whenever the event loop answers at all (liveness: restart only if not);
``/metrics`` is the Prometheus text format; ``/state`` the engine's view of the account.

Bound to 127.0.0.1 only: it shows positions and balances, so it never listens on a
public interface. Decimals are served as strings, exactly as Binance sends them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from loguru import logger
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from aegis.domain import Candle
from aegis.state.store import StateStore, snapshot_to_builtins

ProblemSource = Callable[[], Iterable[str]]
Exposition = Callable[[], bytes]
ExtraState = Callable[[], dict[str, Any]]
Action = Callable[[], Any]

_encoder = msgspec.json.Encoder(decimal_format="string")


def kline_row(candle: Candle) -> list[Any]:
    """A candle as Binance's 12-element kline row (strings for prices and volumes)."""
    return [
        candle.open_time_ms,
        format(candle.open, "f"),
        format(candle.high, "f"),
        format(candle.low, "f"),
        format(candle.close, "f"),
        format(candle.volume, "f"),
        candle.close_time_ms,
        format(candle.quote_volume, "f"),
        candle.trades,
        format(candle.taker_buy_base, "f"),
        format(candle.taker_buy_quote, "f"),
        "0",
    ]


class _ClientErrorsAtDebug(logging.Filter):
    """A malformed request to the ops port (a port scanner, a typo in curl) is the client's problem:
    a DEBUG line, not an ERROR with a traceback in the engine's log. An exception raised by one of
    our handlers (a failing POST /kill) is ours: it stays an ERROR with its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.exc_info = None
        return True


_CLIENT_ERRORS = logging.getLogger("aegis.ops.http")
_CLIENT_ERRORS.addFilter(_ClientErrorsAtDebug())


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(payload), status=status, content_type="application/json")


class OpsServer:
    def __init__(
        self,
        state: StateStore,
        problems: Iterable[ProblemSource] = (),
        extra_state: ExtraState | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        metrics: Exposition | None = None,
    ) -> None:
        self._state = state
        self._problems = list(problems)
        self._extra_state = extra_state
        self._host = host
        self._port = port
        self._metrics = metrics
        self._runner: web.AppRunner | None = None
        self._actions: list[tuple[str, str, Action]] = []
        self.bound_port: int | None = None
        self.bound_host: str | None = None

    def add_problem_source(self, source: ProblemSource) -> None:
        """Later components add their own health conditions (stream silent, key expired...)."""
        self._problems.append(source)

    def add_action(self, method: str, path: str, action: Action) -> None:
        """An operator command (POST /kill, POST /reconcile...): ``action()`` may be sync or async and
        returns what the response says (JSON). Add before ``start()``."""
        self._actions.append((method, path, action))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/health/live", self._live)
        if self._metrics is not None:
            app.router.add_get("/metrics", self._metrics_view)
        app.router.add_get("/state", self._state_view)
        app.router.add_get("/state/candles/{symbol}", self._candles)
        for method, path, action in self._actions:
            app.router.add_route(method, path, self._runs(action))
        return app

    @staticmethod
    def _runs(action: Action) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(_: web.Request) -> web.Response:
            result = action()
            if inspect.isawaitable(result):
                result = await result
            return _json(result if result is not None else {"ok": True})

        return handler

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None, logger=_CLIENT_ERRORS)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if not sockets:
            raise RuntimeError("ops endpoint did not bind")
        self.bound_host, self.bound_port = sockets[0].getsockname()[:2]
        logger.info("ops endpoint listening on http://{}:{}", self._host, self.bound_port)
        return self.bound_port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def problems(self) -> list[str]:
        """Every reason the engine is unhealthy right now (what /health answers)."""
        return [reason for source in self._problems for reason in source()]

    async def _health(self, _: web.Request) -> web.Response:
        reasons = self.problems()
        if reasons:
            return _json({"status": "unhealthy", "reasons": reasons}, status=503)
        return _json({"status": "ok", "reasons": []})

    async def _live(self, _: web.Request) -> web.Response:
        """Liveness: answering at all proves the event loop turns; nothing else is checked."""
        return _json({"status": "alive"})

    async def _metrics_view(self, _: web.Request) -> web.Response:
        assert self._metrics is not None
        return web.Response(body=self._metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _state_view(self, _: web.Request) -> web.Response:
        body = snapshot_to_builtins(self._state.snapshot())
        if self._extra_state is not None:
            body.update(self._extra_state())
        return _json(body)

    async def _candles(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        if symbol not in self._state.snapshot().candles:
            return _json({"error": f"no candles for {symbol}"}, status=404)
        return _json([kline_row(c) for c in self._state.candles(symbol)])
