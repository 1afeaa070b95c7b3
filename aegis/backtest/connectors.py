"""aiohttp's connection-pool timer, set for a backtest: on virtual time each one is a jump of the clock.

aiohttp re-arms a 2-second timer per connector on Python < 3.12.7 to abort closed TLS transports;
the backtest speaks plain HTTP on loopback, so it is turned off, and restored when the backtest
ends (tests run backtests in-process). The REST adapter has no aiohttp pool (its client,
``aegis.binance.http1``, measures idleness on the loop's clock); the WebSockets' connections are
upgraded, never returned to a pool.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

__all__ = ["backtest_connectors"]


@contextlib.contextmanager
def backtest_connectors() -> Iterator[None]:
    import aiohttp.connector

    saved = aiohttp.connector.NEEDS_CLEANUP_CLOSED
    aiohttp.connector.NEEDS_CLEANUP_CLOSED = False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="enable_cleanup_closed ignored", category=DeprecationWarning)
            yield
    finally:
        aiohttp.connector.NEEDS_CLEANUP_CLOSED = saved
