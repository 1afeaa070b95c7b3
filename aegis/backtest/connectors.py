"""aiohttp's connection-pool timers, set for a backtest: on virtual time each one is a jump of the clock.

Two process-wide settings, restored when the backtest ends (tests run backtests in-process):

* aiohttp re-arms a 2-second timer per connector on Python < 3.12.7 to abort closed TLS
  transports; the backtest speaks plain HTTP on loopback, so it is turned off.
* An aiohttp pool (``aiohttp.TCPConnector``; the REST adapter's was one until it got its own
  client, ``aegis.binance.http1``, whose idle check runs on the loop's clock) closes connections
  idle for 15 s, checked by a timer every 15 s: four jumps a minute, more than the candles
  themselves on one symbol. Worse,
  it measures idleness on the monotonic wall clock, so on a loaded machine a connection may be
  dropped and re-opened where an idle one was reused: work that depends on the machine. Here
  pooled connections are kept until the exchange closes them (its keep-alive runs in exchange
  time), so the pool does nothing on the wall clock.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["backtest_connectors"]


@contextlib.contextmanager
def backtest_connectors() -> Iterator[None]:
    import aiohttp
    import aiohttp.connector

    base = aiohttp.TCPConnector
    saved = aiohttp.connector.NEEDS_CLEANUP_CLOSED

    class PooledUntilClosed(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["keepalive_timeout"] = None
            super().__init__(*args, **kwargs)

    aiohttp.connector.NEEDS_CLEANUP_CLOSED = False
    setattr(aiohttp, "TCPConnector", PooledUntilClosed)  # noqa: B010 - ccxt looks it up there at open()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="enable_cleanup_closed ignored", category=DeprecationWarning)
            yield
    finally:
        setattr(aiohttp, "TCPConnector", base)  # noqa: B010
        aiohttp.connector.NEEDS_CLEANUP_CLOSED = saved
