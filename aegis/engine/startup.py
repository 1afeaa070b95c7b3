"""Start-up against the exchange: wait out a flaky network, stop at once on what waiting cannot fix.

Under supervisord a short outage at boot must not leave aegis FATAL: connection refused, timeouts,
5xx, 429s are retried with backoff for ``engine.startup_timeout_s``, saying what it waits for.
A key Binance refuses (-2015 invalid key, IP or permission; -2014; -1022 bad signature; HTTP 401)
will not fix itself: it ends the start-up at once with its own exit code, which the shipped
supervisord configuration does not restart. A symbol the exchange does not trade, or an account in
hedge mode, is a configuration problem: exit 2.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from aegis.backoff import backoff_delay
from aegis.binance import AuthError, BinanceRest, ExchangeError, ExchangeInfo, Rejected

__all__ = ["AuthFailure", "ExchangeUnreachable", "StartupError", "auth_advice", "wait_for_exchange"]


class StartupError(Exception):
    """The engine cannot start with this configuration on this exchange (exit code 2)."""


class ExchangeUnreachable(Exception):
    """The exchange did not answer within ``engine.startup_timeout_s`` (exit code 1: worth a restart)."""


class AuthFailure(Exception):
    """Binance refused the API key: restarting cannot help (exit code 3)."""


def auth_advice(error: AuthError) -> str:
    """One line an operator can act on: Binance's code and message, and what to check."""
    code = f"code {error.code}: " if error.code is not None else ""
    return (
        f"Binance refused the API key ({code}{error.message}): check that AEGIS_API_KEY / AEGIS_API_SECRET "
        "are this account's key pair, that the key has 'Enable Futures' permission and that this "
        "machine's IP is on the key's whitelist; aegis will not retry (exit 3)"
    )


async def check_exchange(rest: BinanceRest, symbols: tuple[str, ...] | list[str]) -> ExchangeInfo:
    """Symbols tradable, the key accepted (a signed call), the account in one-way mode."""
    info = await rest.exchange_info()
    bad = [s for s in symbols if s not in info.symbols or not info.symbols[s].trading]
    if bad:
        raise StartupError(f"symbols: not trading on this exchange: {', '.join(bad)}")
    if await rest.hedge_mode():
        raise StartupError(
            "the account is in hedge mode (dualSidePosition): aegis trades one-way mode only; "
            "switch the position mode to one-way (Binance: Preferences > Position Mode) and restart"
        )
    return info


async def wait_for_exchange(
    rest: BinanceRest,
    symbols: tuple[str, ...] | list[str],
    *,
    url: str,
    timeout_s: float,
    backoff_initial_s: float = 1.0,
    backoff_max_s: float = 30.0,
) -> ExchangeInfo:
    """``check_exchange`` until it answers, retrying transient errors for ``timeout_s`` (loop seconds:
    wall seconds in production)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    failures = 0
    while True:
        try:
            return await check_exchange(rest, symbols)
        except AuthError as exc:
            raise AuthFailure(auth_advice(exc)) from None
        except Rejected as exc:
            raise StartupError(f"the exchange refused a start-up request: {exc}") from None
        except ExchangeError as exc:
            failures += 1
            waited = loop.time() - started
            if waited >= timeout_s:
                raise ExchangeUnreachable(
                    f"the exchange at {url} did not answer for {waited:.0f} s "
                    f"(engine.startup_timeout_s = {timeout_s:g}): {exc}"
                ) from None
            delay = min(backoff_delay(failures, backoff_initial_s, backoff_max_s), timeout_s - waited)
            logger.warning(
                "waiting for the exchange at {}: {}; attempt {} failed, next in {:.0f} s (giving up after {:g} s)",
                url,
                exc,
                failures,
                delay,
                timeout_s,
            )
            await asyncio.sleep(delay)
