"""The listenKey's owner: create, keep alive, notice its death, close.

Binance expires a listenKey 60 minutes after its last keepalive, and the socket on it stays
open while nothing more arrives: a failed keepalive is therefore not a log line but the
start of a countdown. This keeper retries failed keepalives with backoff, reports -1125
("does not exist") at once, and declares the key dead itself once 60 minutes have passed
without a successful keepalive, so the stream reconnects on a new key in every case.

Only a short prefix of a key is ever logged: it is the bearer token of the account's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from loguru import logger

from aegis.binance.constants import LISTEN_KEY_LIFETIME_S
from aegis.binance.errors import ListenKeyNotFound
from aegis.clock import Clock
from aegis.redact import key_prefix, register_secret

__all__ = ["ListenKeyApi", "ListenKeyKeeper"]

KeyGone = Callable[[str], None]


class ListenKeyApi(Protocol):
    """The three REST calls of Binance's listenKey (``aegis.binance.BinanceRest`` has them)."""

    async def create_listen_key(self) -> str: ...

    async def keepalive_listen_key(self) -> None: ...

    async def close_listen_key(self) -> None: ...


class ListenKeyKeeper:
    """Holds the current listenKey and keeps it alive; ``on_gone(reason)`` when it is lost."""

    def __init__(
        self,
        api: ListenKeyApi,
        clock: Clock,
        *,
        keepalive_interval_s: float = 1800.0,
        lifetime_s: float = LISTEN_KEY_LIFETIME_S,
        retry_initial_s: float = 30.0,
        retry_max_s: float = 300.0,
    ) -> None:
        if keepalive_interval_s <= 0 or lifetime_s <= 0:
            raise ValueError("keepalive_interval_s and lifetime_s must be > 0")
        self._api = api
        self._clock = clock
        self.keepalive_interval_s = keepalive_interval_s
        self.lifetime_s = lifetime_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.key: str | None = None
        self.generation = 0  # bumps whenever the key is (re)acquired or declared dead
        self.created_ms: int | None = None  # when the current key value was first handed out
        self.last_ok_ms: int | None = None  # last successful POST or PUT: the expiry countdown starts here
        self.keepalives = 0
        self.keepalive_failures = 0  # consecutive
        self.keys_created = 0
        self.last_error: str | None = None
        self._last_attempt_ms = 0
        self._changed = asyncio.Event()

    # --- state --------------------------------------------------------------------------

    def expires_at_ms(self) -> int | None:
        """When the exchange will expire the key unless a keepalive lands first (our estimate)."""
        if self.key is None or self.last_ok_ms is None:
            return None
        return self.last_ok_ms + int(self.lifetime_s * 1000)

    def presumed_expired(self) -> bool:
        expires = self.expires_at_ms()
        return expires is not None and self._clock.now_ms() >= expires

    # --- operations ---------------------------------------------------------------------

    async def acquire(self) -> str:
        """POST: the active key (extended) or a new one. Raises ExchangeError on failure."""
        key = await self._api.create_listen_key()
        now = self._clock.now_ms()
        if key != self.key:
            register_secret(key)  # redacted from every log line from now on, adapter's included
            if self.key is not None:
                logger.info("listenKey replaced: {} -> {}", key_prefix(self.key), key_prefix(key))
            else:
                logger.info("listenKey {} acquired", key_prefix(key))
            self.key = key
            self.created_ms = now
            self.keys_created += 1
        self.generation += 1
        self.last_ok_ms = now
        self.keepalive_failures = 0
        self.last_error = None
        self._changed.set()
        return key

    def invalidate(self, reason: str) -> bool:
        """Forget the key (listenKeyExpired, -1125); True if there was one to forget."""
        if self.key is None:
            return False
        logger.warning("listenKey {} is gone: {}", key_prefix(self.key), reason)
        self.key = None
        self.created_ms = None
        self.last_ok_ms = None
        self.generation += 1
        self.last_error = reason
        self._changed.set()
        return True

    async def keepalive(self) -> bool:
        """PUT once. True on success; False if it failed (ListenKeyNotFound is re-raised)."""
        generation = self.generation
        try:
            await self._api.keepalive_listen_key()
        except ListenKeyNotFound:
            raise
        except Exception as exc:  # ExchangeError, or anything the transport let through
            self.keepalive_failures += 1
            self.last_error = f"keepalive failed: {type(exc).__name__}: {exc}"
            logger.warning("listenKey keepalive failed ({} in a row): {}", self.keepalive_failures, exc)
            return False
        if generation == self.generation:
            self.last_ok_ms = self._clock.now_ms()
            self.keepalives += 1
            self.keepalive_failures = 0
            self.last_error = None
        return True

    async def close(self) -> None:
        """DELETE on shutdown, so the exchange stops pushing to a key nobody reads."""
        if self.key is None:
            return
        key, self.key = self.key, None
        try:
            await self._api.close_listen_key()
            logger.info("listenKey {} closed", key_prefix(key))
        except Exception as exc:
            logger.warning("listenKey {} close failed: {}", key_prefix(key), exc)

    # --- the loop -----------------------------------------------------------------------

    async def run(self, on_gone: KeyGone) -> None:
        """Keep the key alive until cancelled; call ``on_gone`` when it is lost for any reason."""
        while True:
            action, due_ms = self._next_action()
            if due_ms is not None and self._clock.now_ms() < due_ms:
                await self._wait(due_ms)
                continue
            if action == "expired":
                self._declare_gone(on_gone, f"no successful keepalive for {self.lifetime_s:.0f} s")
            elif action == "keepalive":
                await self._keepalive_once(on_gone)
            else:
                await self._wait(None)

    def _next_action(self) -> tuple[str, int | None]:
        """What to do next and when (engine ms): keep alive, declare expiry, or wait for a key."""
        if self.key is None or self.last_ok_ms is None:
            return "idle", None
        expires = self.last_ok_ms + int(self.lifetime_s * 1000)
        if self.keepalive_failures:
            delay = min(self.retry_max_s, self.retry_initial_s * 2 ** (self.keepalive_failures - 1))
            keepalive = self._last_attempt_ms + int(delay * 1000)
        else:
            keepalive = self.last_ok_ms + int(self.keepalive_interval_s * 1000)
        if expires <= keepalive:
            return "expired", expires
        return "keepalive", keepalive

    async def _keepalive_once(self, on_gone: KeyGone) -> None:
        generation = self.generation
        self._last_attempt_ms = self._clock.now_ms()
        try:
            await self.keepalive()
        except ListenKeyNotFound as exc:
            if generation == self.generation:
                self._declare_gone(on_gone, f"keepalive answered {exc.code}: {exc.message}")

    def _declare_gone(self, on_gone: KeyGone, reason: str) -> None:
        if self.invalidate(reason):
            try:
                on_gone(reason)
            except Exception as exc:
                logger.opt(exception=exc).error("listenKey on_gone callback failed")

    async def _wait(self, due_ms: int | None) -> None:
        """Sleep until ``due_ms`` (engine clock) or until the key changes, whichever is first."""
        self._changed.clear()
        timeout = None if due_ms is None else self._clock.wall_seconds((due_ms - self._clock.now_ms()) / 1000)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)
