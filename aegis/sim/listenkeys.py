"""listenKeys: their lifetime (POST/PUT/DELETE /fapi/v1/listenKey) and the delivery of user events.

Binance semantics, on the simulator clock: one listenKey per account; POST returns the active
key (extending it) or creates one; PUT extends it or answers -1125 once it is gone; DELETE
closes it. A key lives 60 minutes after creation or its last keepalive; when it lapses every
connection subscribed to it receives ``listenKeyExpired`` and nothing more is delivered for it
(a connection left with no key is then closed). Events the exchange core publishes on the Bus
are forwarded in publish order, encoded once per key.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiohttp import web

from aegis.sim.bus import Payload
from aegis.sim.clock import MINUTE_MS, SimClock
from aegis.sim.errors import BinanceError, api_key_format
from aegis.sim.wsconn import WsConn, WsLimits
from aegis.sim.wsrequests import wrap

log = logging.getLogger("aegis.sim.userstream")

LISTEN_KEY_LIFETIME_MS = 60 * MINUTE_MS
KEY_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 64
LISTEN_KEY_WEIGHT = 1

# The exchange's account lookup: raises BinanceError (-2015) for an unknown API key.
AccountCheck = Callable[[str], object]
# The exchange's request-weight limiter: takes (ip, weight), raises BinanceError (429/418) when
# over the limit, returns the X-MBX-USED-WEIGHT-1M header value.
Weigh = Callable[[str, int], str]
Events = frozenset[str] | None  # the event types a subscription delivers; None = all


def no_such_key() -> BinanceError:
    return BinanceError(400, -1125, "This listenKey does not exist.")


def looks_like_listen_key(text: str) -> bool:
    """Legacy ``/ws/<x>``: a 64-character alphanumeric name is a listenKey, anything else a stream."""
    return len(text) == KEY_LENGTH and text.isalnum()


class UserMute(Protocol):
    """A user-stream fault: True when this event must be lost (the socket stays open)."""

    done: bool

    def __call__(self, api_key: str, event: Payload) -> bool: ...


@dataclass(eq=False)
class UserConn:
    """One private connection and the listenKeys it is subscribed to, with their event filters.

    ``combined`` (the ``/private/stream`` route) wraps every event as ``{"stream": <listenKey>,
    "data": ...}``; the ``/private/ws`` route sends events bare."""

    conn: WsConn
    combined: bool = False
    subs: dict[str, Events] = field(default_factory=dict)


@dataclass(eq=False)
class ListenKey:
    api_key: str
    key: str
    created_ms: int
    expires_ms: int
    state: str = "active"  # active | expired | closed
    conns: dict[UserConn, None] = field(default_factory=dict)  # ordered: events go out in attach order
    watcher: asyncio.Task[None] | None = None


class ListenKeys:
    """Every account's listenKey, its expiry watcher, and the event forwarding."""

    def __init__(self, clock: SimClock, limits: WsLimits | None = None) -> None:
        self.clock = clock
        self.limits = limits or WsLimits()
        self.lifetime_ms = LISTEN_KEY_LIFETIME_MS
        self._by_account: dict[str, ListenKey] = {}
        self._by_key: dict[str, ListenKey] = {}
        self.mutes: list[UserMute] = []
        self.conns: dict[UserConn, None] = {}  # every open private connection, subscribed or not

    # -- lifetime ----------------------------------------------------------------------------
    def active(self, api_key: str) -> ListenKey | None:
        lk = self._by_account.get(api_key)
        if lk is None or lk.state != "active":
            return None
        if self.clock.now_ms() >= lk.expires_ms:
            self._expire(lk)
            return None
        return lk

    def create_or_extend(self, api_key: str) -> ListenKey:
        """POST: the active key, extended, or a fresh one."""
        lk = self.active(api_key)
        if lk is not None:
            lk.expires_ms = self.clock.now_ms() + self.lifetime_ms
            return lk
        now = self.clock.now_ms()
        key = "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))
        lk = ListenKey(api_key, key, now, now + self.lifetime_ms)
        self._by_account[api_key] = lk
        self._by_key[key] = lk
        lk.watcher = asyncio.get_running_loop().create_task(self._watch(lk), name=f"sim-listenkey-{key[:8]}")
        log.info("listenKey created for %s (expires at %d)", mask(api_key), lk.expires_ms)
        return lk

    def keepalive(self, api_key: str) -> ListenKey:
        """PUT: extend by 60 minutes, or -1125 when the key is closed or expired."""
        lk = self.active(api_key)
        if lk is None:
            raise no_such_key()
        lk.expires_ms = self.clock.now_ms() + self.lifetime_ms
        return lk

    def close(self, api_key: str) -> None:
        """DELETE: the key stops; its subscriptions end (a connection left with none closes)."""
        lk = self.active(api_key)
        if lk is None:
            return
        lk.state = "closed"
        self._stop_watcher(lk)
        for uc in list(lk.conns):
            self.detach(uc, lk, close_if_empty=True)
        log.info("listenKey of %s closed", mask(api_key))

    def expire_now(self, api_key: str | None = None) -> int:
        """Fault injection: expire one account's key (or all); returns how many expired."""
        victims = [lk for lk in self._by_account.values() if lk.state == "active"]
        if api_key is not None:
            victims = [lk for lk in victims if lk.api_key == api_key]
        for lk in victims:
            self._expire(lk)
        return len(victims)

    def lookup(self, key: str) -> ListenKey | None:
        """The active key named ``key``; None when it was never issued, expired or was closed."""
        lk = self._by_key.get(key)
        if lk is not None and lk.state == "active" and self.active(lk.api_key) is lk:
            return lk
        return None

    def named(self, key: str) -> ListenKey | None:
        """The key named ``key`` in whatever state (for UNSUBSCRIBE)."""
        return self._by_key.get(key)

    async def _watch(self, lk: ListenKey) -> None:
        """Sleep until the expiry; a keepalive moved it later, so look again after waking."""
        while lk.state == "active":
            await self.clock.sleep_until(lk.expires_ms)
            if lk.state == "active" and self.clock.now_ms() >= lk.expires_ms:
                self._expire(lk)

    def _expire(self, lk: ListenKey) -> None:
        if lk.state != "active":
            return
        lk.state = "expired"
        if lk.watcher is not asyncio.current_task():
            self._stop_watcher(lk)
        told = len(lk.conns)
        for uc in list(lk.conns):
            self._tell_expired(uc, lk)
        log.info("listenKey of %s expired (%d connections told)", mask(lk.api_key), told)

    def _tell_expired(self, uc: UserConn, lk: ListenKey) -> None:
        # E is a string in Binance's current docs example (older ones had a number).
        raw = orjson.dumps({"e": "listenKeyExpired", "E": str(self.clock.now_ms()), "listenKey": lk.key})
        uc.conn.send(wrap(lk.key, raw) if uc.combined else raw)
        self.detach(uc, lk, close_if_empty=True)

    # -- subscriptions -----------------------------------------------------------------------
    def attach(self, uc: UserConn, lk: ListenKey, events: Events = None) -> None:
        """Subscribe ``uc`` to ``lk``; a key that lapsed while the handshake ran is reported at once."""
        uc.subs[lk.key] = events
        lk.conns[uc] = None
        if lk.state == "active":
            self.active(lk.api_key)  # expires it now (telling uc) if its time has passed
        elif lk.state == "expired":
            self._tell_expired(uc, lk)
        else:
            self.detach(uc, lk, close_if_empty=True)

    def detach(self, uc: UserConn, lk: ListenKey, *, close_if_empty: bool = False) -> None:
        lk.conns.pop(uc, None)
        uc.subs.pop(lk.key, None)
        if close_if_empty and not uc.subs:
            uc.conn.close_after_flush()

    def forget(self, uc: UserConn) -> None:
        """A connection ended: drop all its subscriptions."""
        self.conns.pop(uc, None)
        for key in list(uc.subs):
            lk = self._by_key.get(key)
            if lk is not None:
                lk.conns.pop(uc, None)
        uc.subs.clear()

    @staticmethod
    def _stop_watcher(lk: ListenKey) -> None:
        if lk.watcher is not None and lk.watcher is not asyncio.current_task():
            lk.watcher.cancel()
        lk.watcher = None

    def stop(self) -> None:
        for lk in self._by_key.values():
            self._stop_watcher(lk)

    # -- delivery ----------------------------------------------------------------------------
    def on_user_event(self, api_key: str, event: Payload) -> None:
        """Bus listener: never raises into the exchange that publishes."""
        try:
            self._forward(api_key, event)
        except Exception:
            log.exception("user event forwarding failed for %s", mask(api_key))

    def _forward(self, api_key: str, event: Payload) -> None:
        """Forward to the account's live subscriptions, in publish order."""
        lk = self.active(api_key)
        if lk is None or not lk.conns:
            return
        if self.mutes:
            self.mutes = [m for m in self.mutes if not m.done]
            if any(m(api_key, event) for m in self.mutes):
                return
        raw = orjson.dumps(event)
        wrapped: bytes | None = None
        etype = event.get("e")
        for uc in list(lk.conns):
            events = uc.subs.get(lk.key)
            if events is not None and etype not in events:
                continue
            if uc.combined:
                if wrapped is None:
                    wrapped = wrap(lk.key, raw)
                uc.conn.send(wrapped)
            else:
                uc.conn.send(raw)

    def connections(self, api_key: str | None = None) -> list[UserConn]:
        """Open private connections; with ``api_key``, those subscribed to that account's key."""
        if api_key is None:
            return list(self.conns)
        lk = self._by_account.get(api_key)
        return list(lk.conns) if lk is not None else []

    def stats(self) -> dict[str, Any]:
        now = self.clock.now_ms()
        return {
            "connections": len(self.connections()),
            "keys": [
                {
                    "api_key": mask(lk.api_key),
                    "state": lk.state if lk.state != "active" or now < lk.expires_ms else "expired",
                    "expires_ms": lk.expires_ms,
                    "connections": len(lk.conns),
                }
                for lk in self._by_account.values()
            ],
        }

    def freeze_all(self, api_key: str | None = None) -> int:
        victims = self.connections(api_key)
        for uc in victims:
            uc.conn.freeze()
        return len(victims)

    def drop_all(self, reason: str, api_key: str | None = None) -> int:
        victims = self.connections(api_key)
        for uc in victims:
            uc.conn.abort(reason)
        return len(victims)


def mask(api_key: str) -> str:
    return api_key[:6] + "…"


# -- REST ------------------------------------------------------------------------------------
LISTEN_KEYS = web.AppKey("aegis_sim_listen_keys", ListenKeys)
ACCOUNT_CHECK: web.AppKey[AccountCheck] = web.AppKey("aegis_sim_account_check")
WEIGH: web.AppKey[Weigh] = web.AppKey("aegis_sim_weigh")


def error_response(err: BinanceError, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(err.body(), status=err.http_status, headers={**err.headers, **(headers or {})})


def _api_key(request: web.Request) -> str:
    """USER_STREAM security: the X-MBX-APIKEY header of a known account, nothing else."""
    api_key = request.headers.get("X-MBX-APIKEY", "")
    if not api_key:
        raise api_key_format()
    request.app[ACCOUNT_CHECK](api_key)  # BinanceError -2015 for an unknown key
    return api_key


async def listen_key_rest(request: web.Request) -> web.Response:
    """POST/PUT/DELETE /fapi/v1/listenKey (weight 1 each, counted like every other endpoint)."""
    headers: dict[str, str] = {}
    try:
        weigh = request.app.get(WEIGH)
        if weigh is not None:
            headers["X-MBX-USED-WEIGHT-1M"] = weigh(request.remote or "unknown", LISTEN_KEY_WEIGHT)
        body = _listen_key_action(request)
    except BinanceError as err:
        return error_response(err, headers)
    return web.json_response(body, headers=headers)


def _listen_key_action(request: web.Request) -> dict[str, str]:
    keys = request.app[LISTEN_KEYS]
    api_key = _api_key(request)
    if request.method == "POST":
        return {"listenKey": keys.create_or_extend(api_key).key}
    if request.method == "PUT":
        return {"listenKey": keys.keepalive(api_key).key}
    keys.close(api_key)
    return {}
