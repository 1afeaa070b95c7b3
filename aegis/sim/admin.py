"""A small client for the simulator's admin API (/_sim/faults, /_sim/trade, /_sim/audit), for tests and scripts.

It speaks plain HTTP on loopback, like every other client of the simulator, so the same calls
work against an in-process ``SimServer`` and a separate ``aegis sim`` process.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import aiohttp


class SimAdminError(RuntimeError):
    """The admin API refused a request (bad fault spec, unknown id, rejected trade)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class SimAdmin:
    """``async with SimAdmin(server.rest_url) as admin: fid = await admin.inject("drop_ws", scope="user")``."""

    def __init__(self, rest_url: str, session: aiohttp.ClientSession | None = None) -> None:
        self.base = rest_url.rstrip("/")
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> SimAdmin:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(method, self.base + path, json=body) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200:
                raise SimAdminError(resp.status, data)
            return data

    async def inject(self, kind: str, **params: Any) -> int:
        """Start a fault (see aegis.sim.faults for the kinds); returns its id."""
        data = await self._call("POST", "/_sim/faults", {"kind": kind, **params})
        return int(data["id"])

    async def faults(self) -> list[dict[str, Any]]:
        """Every fault injected so far: kind, params, effective_ms, status, ended_ms, hits."""
        rows: list[dict[str, Any]] = await self._call("GET", "/_sim/faults")
        return rows

    async def clear_fault(self, fault_id: int) -> dict[str, Any]:
        """End a lasting fault early."""
        row: dict[str, Any] = await self._call("DELETE", f"/_sim/faults/{fault_id}")
        return row

    async def audit(self, api_key: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """The order requests the exchange received, with its answers, after ``since`` (a seq)."""
        query = f"?since={since}" + (f"&api_key={api_key}" if api_key else "")
        rows: list[dict[str, Any]] = await self._call("GET", f"/_sim/audit{query}")
        return rows

    async def apply_schedule(self, entries: list[dict[str, Any]]) -> None:
        """Send a chaos schedule (aegis.sim.chaos.schedule): each entry to its admin route."""
        for entry in entries:
            if "trade" in entry:
                await self._call("POST", "/_sim/trade", {**entry["trade"], "at_ms": entry["at_ms"]})
            else:
                await self._call("POST", "/_sim/faults", entry)

    async def trade(
        self, api_key: str, symbol: str, side: str, quantity: str, *, events: bool = True, **extra: Any
    ) -> dict[str, Any]:
        """An out-of-band MARKET order on that account (as if from the Binance app)."""
        body = {"api_key": api_key, "symbol": symbol, "side": side, "quantity": quantity, "events": events, **extra}
        order: dict[str, Any] = await self._call("POST", "/_sim/trade", body)
        return order
