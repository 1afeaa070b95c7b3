"""Helpers for the simulator REST tests: a raw signed client and client factories pointed at a SimServer."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from aegis.sim.config import DEMO_API_KEY, DEMO_API_SECRET
from aegis.sim.server import SimServer


def sign(query: str, secret: str = DEMO_API_SECRET) -> str:
    return hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


class Raw:
    """A minimal hand-rolled Binance client, to send exactly what a test needs on the wire."""

    def __init__(self, server: SimServer, key: str = DEMO_API_KEY, secret: str = DEMO_API_SECRET) -> None:
        self.base = server.rest_url
        self.key = key
        self.secret = secret
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    async def public(self, path: str, **params: Any) -> tuple[int, Any, dict[str, str]]:
        async with self.session.get(self.base + path, params={k: str(v) for k, v in params.items()}) as r:
            return r.status, await r.json(content_type=None), dict(r.headers)

    async def signed(
        self, method: str, path: str, *, timestamp: int | None = None, in_body: bool = False, **params: Any
    ) -> tuple[int, Any, dict[str, str]]:
        params = {k: str(v) for k, v in params.items()}
        params["timestamp"] = str(int(time.time() * 1000) if timestamp is None else timestamp)
        q = urlencode(params)
        q = f"{q}&signature={sign(q, self.secret)}"
        headers = {"X-MBX-APIKEY": self.key}
        if in_body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            req = self.session.request(method, self.base + path, data=q.encode(), headers=headers)
        else:
            # encoded=True: send the query byte for byte as signed (yarl would requote %21 to !)
            req = self.session.request(method, URL(f"{self.base}{path}?{q}", encoded=True), headers=headers)
        async with req as r:
            return r.status, await r.json(content_type=None), dict(r.headers)

    async def order(self, **params: Any) -> tuple[int, Any, dict[str, str]]:
        return await self.signed("POST", "/fapi/v1/order", **params)


def python_binance_client(server: SimServer, key: str = DEMO_API_KEY, secret: str = DEMO_API_SECRET) -> Any:
    """python-binance AsyncClient class pointed at ``server`` by base URL only (clients-on-the-wire.md)."""
    from binance import AsyncClient

    class SimClient(AsyncClient):  # type: ignore[misc]
        FUTURES_URL = server.rest_url + "/fapi"
        API_URL = server.rest_url + "/api"
        FUTURES_DATA_URL = server.rest_url + "/futures/data"

    return SimClient.create(key, secret)


def ccxt_client(server: SimServer, key: str = DEMO_API_KEY, secret: str = DEMO_API_SECRET) -> Any:
    """ccxt async binanceusdm with every fapi URL pointed at ``server``."""
    import ccxt.async_support as ccxt

    ex = ccxt.binanceusdm(
        {"apiKey": key, "secret": secret, "options": {"fetchCurrencies": False, "fetchMargins": False}}
    )
    for name, version in (
        ("fapiPublic", "v1"),
        ("fapiPublicV2", "v2"),
        ("fapiPublicV3", "v3"),
        ("fapiPrivate", "v1"),
        ("fapiPrivateV2", "v2"),
        ("fapiPrivateV3", "v3"),
    ):
        ex.urls["api"][name] = f"{server.rest_url}/fapi/{version}"
    ex.urls["api"]["fapiData"] = f"{server.rest_url}/futures/data"
    return ex


def on_tick(price: Any, tick: str) -> str:
    """``price`` rounded down onto the tick grid, as a wire string."""
    from decimal import ROUND_DOWN, Decimal

    t = Decimal(tick)
    return format((Decimal(str(price)) / t).to_integral_value(rounding=ROUND_DOWN) * t, "f")
