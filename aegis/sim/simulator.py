"""The simulator: one clock, one bus, the exchange (accounts, matching) and the market loop."""

from __future__ import annotations

import logging
from typing import Any

from aegis.sim import views
from aegis.sim.audit import Audit
from aegis.sim.bus import Bus
from aegis.sim.candles import MINUTE_MS
from aegis.sim.clock import SimClock
from aegis.sim.config import SimConfig
from aegis.sim.exchange import Exchange
from aegis.sim.market import Market
from aegis.sim.payloads import order_rest
from aegis.sim.ratelimit import RateLimiter
from aegis.sim.symbols import ExchangeInfo
from aegis.sim.wire import fixed

log = logging.getLogger(__name__)


class Simulator:
    """A Binance USD-M exchange in one object; ``server.SimServer`` puts it on loopback.

    ``exchange`` (``new_order``, ``account(api_key)``...), ``market`` (``watch(symbol)``,
    ``unwatch(symbol)``) and ``bus`` are the seams the WebSocket and fault modules use.
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.clock = SimClock(self.config.speed, self.config.start_ms)
        self.bus = Bus()
        self.info = ExchangeInfo.load(self.config)
        self.market = Market(self.config, self.clock, self.bus, self.info)
        self.exchange = Exchange(self.config, self.clock, self.bus, self.info, self.market)
        self.rate_limiter = RateLimiter(self.clock, self.info, self.config)
        self.audit = Audit(self.clock, self.config.audit_rows)
        self._started = False

    async def start(self) -> None:
        """Load the real candle files (in a worker thread), then start the market loop (kline
        publishing and order matching)."""
        if not self._started:
            self._started = True
            await self.market.load()
            self.market.start()

    async def stop(self) -> None:
        self._started = False
        await self.market.stop()
        self.exchange.lag.stop()
        self.exchange.countdowns.stop()

    def set_clock(self, *, speed: float | None = None, jump_ms: int | None = None) -> None:
        """Change speed and/or jump; a jump forward is walked at once (closes, fills, triggers)."""
        if speed is not None:
            self.clock.set_speed(speed)
        if jump_ms:
            self.clock.jump(jump_ms)
            try:
                self.market.step()
            except Exception:  # the loop retries on its next tick; the admin call still succeeds
                log.exception("market step after a clock jump failed")

    def state(self) -> dict[str, Any]:
        """The GET /_sim/state document."""
        ex = self.exchange
        accounts: dict[str, Any] = {}
        for key, acct in ex.accounts.items():
            accounts[key] = {
                "positions": views.position_risk(ex, acct, None, v3=True),
                "open_orders": [
                    order_rest(o, self.info.symbols[o.symbol], query=True) for o in acct.open_orders.values()
                ],
                "open_algo_orders": ex.open_algo_orders(key, None),
                "balances": views.balances(ex, acct),
            }
        now = self.clock.now_ms()
        symbols: dict[str, Any] = {}
        traded = {o.symbol for a in ex.accounts.values() for o in a.orders.values()}
        traded |= {a.symbol for acct in ex.accounts.values() for a in acct.algo_orders.values()}
        for sym in sorted(self.market.tracked | self.market.watched | traded):
            spec = self.info.symbols[sym]
            last = self.market.last_closed.get(sym, now - now % MINUTE_MS - MINUTE_MS)
            symbols[sym] = {
                "last_closed_open_ms": last,
                "price": fixed(self.market.price(sym, now), spec.price_precision),
            }
        return {
            "clock_ms": now,
            "speed": self.clock.speed,
            "fill_model": str(self.exchange.matcher.fill_model),
            "accounts": accounts,
            "symbols": symbols,
        }
