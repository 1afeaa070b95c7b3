"""REQUEST_WEIGHT per IP per minute and ORDERS per account per 10 s / 1 min, on the exchange clock.

Past the weight limit a client gets 429 (-1003) with Retry-After; a client that keeps going
after ``ban_after_429s`` more requests in the same window is banned: 418 "banned until <ms>",
for 2 minutes at first and doubling up to 3 days, as Binance escalates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aegis.sim.clock import MINUTE_MS, SimClock
from aegis.sim.config import SimConfig
from aegis.sim.errors import BinanceError
from aegis.sim.symbols import ExchangeInfo

TEN_S_MS = 10_000
MAX_BAN_MS = 3 * 24 * 3600 * 1000


@dataclass(slots=True)
class _IpState:
    window: int = -1
    used: int = 0
    over: int = 0  # requests refused with 429 in this window
    banned_until: int = 0
    bans: int = 0


@dataclass(slots=True)
class _OrderState:
    win10: int = -1
    n10: int = 0
    win60: int = -1
    n60: int = 0


class RateLimiter:
    def __init__(self, clock: SimClock, info: ExchangeInfo, config: SimConfig) -> None:
        self.clock = clock
        self.enabled = config.rate_limits
        self.weight_limit = info.limit("REQUEST_WEIGHT", "MINUTE")
        self.orders_10s = info.limit("ORDERS", "SECOND")
        self.orders_1m = info.limit("ORDERS", "MINUTE")
        self.ban_after = config.ban_after_429s
        self.ban_ms = config.ban_ms
        self._ips: dict[str, _IpState] = {}
        self._orders: dict[str, _OrderState] = {}

    def _retry_after(self, until_ms: int, now: int) -> str:
        """Seconds on the wall (what a client sleeps), at least 1."""
        return str(max(1, math.ceil(self.clock.wall_seconds(until_ms - now))))

    def used_weight(self, ip: str) -> int:
        st = self._ips.get(ip)
        now = self.clock.now_ms()
        return st.used if st and st.window == now // MINUTE_MS else 0

    def take_weight(self, ip: str, weight: int) -> None:
        """Count ``weight`` for ``ip`` or raise 429/418 (-1003)."""
        now = self.clock.now_ms()
        st = self._ips.get(ip)
        if st is None:
            st = self._ips[ip] = _IpState()
        window = now // MINUTE_MS
        if st.window != window:
            st.window, st.used, st.over = window, 0, 0
        if self.enabled and now < st.banned_until:
            raise self._banned(ip, st, now)
        if self.enabled and st.used + weight > self.weight_limit:
            st.over += 1
            if st.over > self.ban_after:
                st.banned_until = now + min(self.ban_ms * 2**st.bans, MAX_BAN_MS)
                st.bans += 1
                raise self._banned(ip, st, now)
            raise BinanceError(
                429,
                -1003,
                f"Too many requests; current limit of IP({ip}) is {self.weight_limit} requests per minute. "
                "Please use the websocket for live updates to avoid bans.",
                {"Retry-After": self._retry_after((window + 1) * MINUTE_MS, now)},
            )
        st.used += weight

    def _banned(self, ip: str, st: _IpState, now: int) -> BinanceError:
        return BinanceError(
            418,
            -1003,
            f"Way too many requests; IP({ip}) banned until {st.banned_until}. "
            "Please use the websocket for live updates to avoid bans.",
            {"Retry-After": self._retry_after(st.banned_until, now)},
        )

    def take_order(self, api_key: str) -> dict[str, str]:
        """Count one order for the account; headers to send, or 429 (-1015) past a limit."""
        now = self.clock.now_ms()
        st = self._orders.get(api_key)
        if st is None:
            st = self._orders[api_key] = _OrderState()
        if st.win10 != now // TEN_S_MS:
            st.win10, st.n10 = now // TEN_S_MS, 0
        if st.win60 != now // MINUTE_MS:
            st.win60, st.n60 = now // MINUTE_MS, 0
        if self.enabled:
            if st.n10 + 1 > self.orders_10s:
                raise BinanceError(
                    429,
                    -1015,
                    f"Too many new orders; current limit is {self.orders_10s} orders per 10 SECOND.",
                    {"Retry-After": self._retry_after((st.win10 + 1) * TEN_S_MS, now)},
                )
            if st.n60 + 1 > self.orders_1m:
                raise BinanceError(
                    429,
                    -1015,
                    f"Too many new orders; current limit is {self.orders_1m} orders per 1 MINUTE.",
                    {"Retry-After": self._retry_after((st.win60 + 1) * MINUTE_MS, now)},
                )
        st.n10 += 1
        st.n60 += 1
        return {"X-MBX-ORDER-COUNT-10S": str(st.n10), "X-MBX-ORDER-COUNT-1M": str(st.n60)}
