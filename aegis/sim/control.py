"""The simulator's control routes: state, clock and out-of-band trades (faults live in ``faults``).

- ``GET /_sim/state``: positions, open orders, balances per account; last closed candle per symbol.
- ``POST /_sim/clock {"speed": X, "jump_ms": M}``: change the rate and/or jump exchange time.
- ``POST /_sim/trade {"api_key", "symbol", "side", "quantity"[, "events", "reduceOnly"]}``: a
  MARKET order placed outside the API client, as if from the Binance app (``android_`` client id).
- ``GET /_sim/audit[?api_key=K][&since=SEQ]``: every order request the exchange received, with its
  answer (audit.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import string
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from aegis.sim import admininput as inp
from aegis.sim.admininput import AdminInputError, read_json
from aegis.sim.errors import BinanceError
from aegis.sim.faults import FAULT_BOOK

if TYPE_CHECKING:
    from aegis.sim.simulator import Simulator

log = logging.getLogger("aegis.sim.control")

NewOrder = Callable[..., dict[str, Any]]
SIM_KEY: web.AppKey[Any] = web.AppKey("aegis_sim")
NEW_ORDER: web.AppKey[NewOrder] = web.AppKey("aegis_sim_new_order")
SCHEDULED: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("aegis_sim_scheduled_trades")
_ID_CHARS = string.ascii_letters + string.digits
CLOCK_PARAMS = frozenset({"speed", "jump_ms"})
TRADE_PARAMS = frozenset({"api_key", "symbol", "side", "quantity", "events", "positionSide", "reduceOnly"})
MAX_SPEED = 1_000_000.0
_SEQ = re.compile(r"[0-9]{1,18}")


def _json(status: int, body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _trade_shape(spec: dict[str, Any]) -> tuple[str, str, str, str, bool]:
    api_key = spec.get("api_key")
    side = spec.get("side")
    symbol = spec.get("symbol")
    quantity = spec.get("quantity")
    events = spec.get("events", True)
    if not isinstance(api_key, str) or not isinstance(symbol, str) or side not in ("BUY", "SELL"):
        raise AdminInputError("api_key, symbol and side (BUY|SELL) are required")
    if not isinstance(quantity, str) or len(quantity) > 64:
        raise AdminInputError("quantity is required (a decimal string such as \"0.010\")")
    if not isinstance(events, bool):
        raise AdminInputError("events must be true or false")
    return api_key, symbol, str(side), quantity, events


def out_of_band_order(new_order: NewOrder, spec: dict[str, Any]) -> dict[str, Any]:
    """Place the MARKET order a ``POST /_sim/trade`` body describes; BinanceError if refused."""
    inp.only(spec, TRADE_PARAMS, "/_sim/trade")
    api_key, symbol, side, quantity, events = _trade_shape(spec)
    params = {
        "symbol": symbol.upper(),
        "side": str(side),
        "type": "MARKET",
        "quantity": str(quantity),
        "newClientOrderId": "android_" + "".join(secrets.choice(_ID_CHARS) for _ in range(20)),
        "newOrderRespType": "RESULT",
    }
    for optional in ("positionSide", "reduceOnly"):
        if optional in spec:
            params[optional] = str(spec[optional]).lower() if optional == "reduceOnly" else str(spec[optional])
    order = new_order(api_key, params, emit_events=events)
    log.warning("out-of-band trade on %s…: %s %s %s (events=%s)", api_key[:6], side, quantity, symbol, events)
    return order


async def post_trade(request: web.Request) -> web.Response:
    """Place now, or at ``at_ms`` (answered ``{"scheduled": true, "at_ms": T}``)."""
    try:
        spec = await read_json(request)
        if "at_ms" in spec:
            return _json(200, schedule_trade(request.app, spec))
        order = out_of_band_order(request.app[NEW_ORDER], spec)
    except AdminInputError as err:
        return _json(400, {"error": str(err)})
    except BinanceError as err:
        return _json(err.http_status, err.body())
    return _json(200, order)


def schedule_trade(app: web.Application, spec: dict[str, Any]) -> dict[str, Any]:
    """An out-of-band trade at exchange time ``at_ms`` (its shape checked now; the exchange's
    own answer, e.g. -2019, is logged when it runs)."""
    clock = app[SIM_KEY].clock
    at = inp.at_ms(spec, clock.now_ms())
    body = {k: v for k, v in spec.items() if k != "at_ms"}
    inp.only(body, TRADE_PARAMS, "/_sim/trade")
    _trade_shape(body)

    async def later() -> None:
        await clock.sleep_until(at)
        try:
            out_of_band_order(app[NEW_ORDER], body)
        except (BinanceError, AdminInputError) as err:
            log.warning("scheduled out-of-band trade refused: %s", err)

    task = asyncio.get_running_loop().create_task(later(), name="sim-scheduled-trade")
    app[SCHEDULED].add(task)
    task.add_done_callback(app[SCHEDULED].discard)
    return {"scheduled": True, "at_ms": at}


def apply_schedule(app: web.Application, entries: tuple[dict[str, Any], ...]) -> None:
    """SimConfig.fault_schedule: fault bodies (with at_ms) to the fault book, ``{"trade": {...},
    "at_ms": T}`` entries as scheduled trades (chaos.py writes both)."""
    book = app[FAULT_BOOK]
    for entry in entries:
        if "trade" in entry:
            schedule_trade(app, {**entry["trade"], "at_ms": entry.get("at_ms", 0)})
        else:
            book.inject(dict(entry))


async def sim_state(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM_KEY]
    return _json(200, sim.state())


async def sim_clock(request: web.Request) -> web.Response:
    """POST /_sim/clock {"speed": X} and/or {"jump_ms": M}; answers the new clock.

    ``speed`` is a number in (0, 1e6]; ``jump_ms`` an integer within ±366 days that keeps the
    clock in 2017..2100. Anything else is a 400 and the clock does not move."""
    sim: Simulator = request.app[SIM_KEY]
    try:
        body = await read_json(request) if await request.read() else {}
        inp.only(body, CLOCK_PARAMS, "/_sim/clock")
        speed = inp.number(body, "speed", maximum=MAX_SPEED, positive=True) if "speed" in body else None
        jump = inp.jump_ms(body, "jump_ms", sim.clock.now_ms()) if "jump_ms" in body else None
    except AdminInputError as err:
        return _json(400, {"error": str(err)})
    sim.set_clock(speed=speed, jump_ms=jump)
    return _json(200, {"clock_ms": sim.clock.now_ms(), "speed": sim.clock.speed})


async def sim_audit(request: web.Request) -> web.Response:
    """GET /_sim/audit[?api_key=K][&since=SEQ]: the order requests the exchange received (audit.py)."""
    sim: Simulator = request.app[SIM_KEY]
    since_text = request.query.get("since", "0")
    if not _SEQ.fullmatch(since_text):
        return _json(400, {"error": "since must be a non-negative integer"})
    return _json(200, sim.audit.select(request.query.get("api_key"), int(since_text)))


def mount_trade(app: web.Application, new_order: NewOrder) -> None:
    """Only the out-of-band trade route; split out so a test can mount it on a bare app."""
    app[NEW_ORDER] = new_order
    app[SCHEDULED] = set()
    app.router.add_post("/_sim/trade", post_trade)

    async def _shutdown(_: web.Application) -> None:
        pending: set[asyncio.Task[None]] = app[SCHEDULED]
        for task in list(pending):
            task.cancel()

    app.on_shutdown.append(_shutdown)


def install(app: web.Application, sim: Simulator) -> None:
    app[SIM_KEY] = sim
    app.router.add_get("/_sim/state", sim_state)
    app.router.add_post("/_sim/clock", sim_clock)
    app.router.add_get("/_sim/audit", sim_audit)
    mount_trade(app, sim.exchange.new_order)
