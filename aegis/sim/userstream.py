"""The private (user data) WebSocket routes: ``/private/ws`` and ``/private/stream``.

Binance's 2026 split [docs: Important WebSocket Change Notice] serves user data under
``/private`` in two modes:
- ws mode, ``/private/ws?listenKey=<k>[&events=A/B]`` (or ``/private/ws/<k>``): events bare;
- stream mode, ``/private/stream?listenKey=<k1>&events=A&listenKey=<k2>&events=B``: events in
  the combined envelope ``{"stream": <listenKey>, "data": {...}}``; the i-th ``events`` applies to
  the i-th ``listenKey`` when they pair up, otherwise every ``events`` value to every key.
On either, JSON ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS`` with listenKeys as params add
and remove keys later; Binance's official Python SDK opens ``/private/stream`` bare and
SUBSCRIBEs its listenKey. The legacy ``/ws/<listenKey>`` route (streams.py) lands here too.

A key's expiry (``listenKeyExpired``, then nothing more for it) and the 24-hour cut of the
connection apply on every route. What Binance answers to a SUBSCRIBE of a key that does not
exist (or no longer does) is UNCONFIRMED; a third-party probe found Binance's handshake with a
bogus key succeeds and stays silent, so the simulator takes the SUBSCRIBE (``result: null``) and
delivers nothing for it: a client must notice silence itself, as it must live. A handshake
naming a dead key is refused with -1125, as before (the strict answer for that route).
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from aegis.sim.listenkeys import (
    ACCOUNT_CHECK,
    LISTEN_KEYS,
    WEIGH,
    AccountCheck,
    Events,
    ListenKeys,
    UserConn,
    Weigh,
    error_response,
    listen_key_rest,
    no_such_key,
)
from aegis.sim.wsconn import WsConn, WsLimits, prepare
from aegis.sim.wsrequests import WsRequestError, answer, string_params

MAX_KEYS = 1024  # Binance's limit on streams per connection


def _split(values: list[str]) -> list[str]:
    """``events=A/B`` (Binance's documented separator), ``A,B`` or repeated parameters."""
    return [part for value in values for part in value.replace(",", "/").split("/") if part]


def _requested(request: web.Request) -> list[tuple[str, Events]]:
    """(listenKey, event filter) pairs named by the URL."""
    keys = _split(request.query.getall("listenKey", []))
    tail = request.match_info.get("tail", "")
    if tail:
        keys.append(tail)
    events = request.query.getall("events", [])
    if len(events) == len(keys) > 1:
        return [(k, frozenset(_split([e])) or None) for k, e in zip(keys, events, strict=True)]
    every = frozenset(_split(events)) or None
    return [(k, every) for k in keys]


async def private_ws(request: web.Request) -> web.StreamResponse:
    return await serve(request, _requested(request), combined=False, key_required=True)


async def private_stream(request: web.Request) -> web.StreamResponse:
    return await serve(request, _requested(request), combined=True, key_required=False)


async def serve(
    request: web.Request, wanted: list[tuple[str, Events]], *, combined: bool, key_required: bool
) -> web.StreamResponse:
    """A user-stream connection; a handshake naming an unknown or lapsed key is refused (-1125)."""
    registry = request.app[LISTEN_KEYS]
    found = [(registry.lookup(key), events) for key, events in wanted]
    live = [(lk, events) for lk, events in found if lk is not None]
    if (key_required and not wanted) or len(live) != len(wanted) or len(wanted) > MAX_KEYS:
        return error_response(no_such_key())
    ws = await prepare(request)
    uc = UserConn(WsConn(ws, request, registry.clock, registry.limits, "user"), combined=combined)
    registry.conns[uc] = None
    for lk, events in live:
        registry.attach(uc, lk, events)

    async def on_text(_: WsConn, text: str) -> None:
        answer(uc.conn, text, lambda req: _apply(registry, uc, req))

    try:
        await uc.conn.run(on_text)
    finally:
        registry.forget(uc)
    return ws


def _apply(registry: ListenKeys, uc: UserConn, req: dict[str, Any]) -> Any:
    """SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS with listenKeys as the params."""
    method = req.get("method")
    params = req.get("params", [])
    if method == "SUBSCRIBE":
        names = string_params(params)
        if len(set(uc.subs) | set(names)) > MAX_KEYS:
            raise WsRequestError(2, f"Invalid request: too many streams (max {MAX_KEYS})")
        for name in names:
            lk = registry.lookup(name)
            if lk is not None and name not in uc.subs:
                registry.attach(uc, lk)
        return None
    if method == "UNSUBSCRIBE":
        for name in string_params(params):
            lk = registry.named(name)
            if lk is not None:
                registry.detach(uc, lk)
        return None
    if method == "LIST_SUBSCRIPTIONS":
        return list(uc.subs)
    raise WsRequestError(2, "Invalid request: unknown method")


def install(app: web.Application, sim: Any, limits: WsLimits | None = None) -> None:
    """Add the listenKey endpoints and the private routes; forward the Bus's user events."""
    registry = ListenKeys(sim.clock, limits)
    limiter = getattr(sim, "rate_limiter", None)
    weigh: Weigh | None = None
    if limiter is not None:

        def weigh(ip: str, weight: int) -> str:
            limiter.take_weight(ip, weight)
            return str(limiter.used_weight(ip))

    mount(app, registry, sim.exchange.account, weigh)
    sim.bus.on_user_event(registry.on_user_event)


def mount(app: web.Application, registry: ListenKeys, account_check: AccountCheck, weigh: Weigh | None = None) -> None:
    """Routes and lifecycle only; split out so a test can mount the registry on a bare app."""
    app[LISTEN_KEYS] = registry
    app[ACCOUNT_CHECK] = account_check
    if weigh is not None:
        app[WEIGH] = weigh
    for method in ("POST", "PUT", "DELETE"):
        app.router.add_route(method, "/fapi/v1/listenKey", listen_key_rest)
    app.router.add_get("/private/ws", private_ws)
    app.router.add_get("/private/ws/{tail}", private_ws)
    app.router.add_get("/private/stream", private_stream)

    async def _shutdown(_: web.Application) -> None:
        registry.stop()
        for uc in registry.connections():
            with contextlib.suppress(Exception):
                await uc.conn.ws.close()

    app.on_shutdown.append(_shutdown)
