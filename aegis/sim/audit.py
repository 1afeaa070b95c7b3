"""The audit: every order request the exchange received and what it answered, in arrival order.

The ground truth for duplicate and rejection counts in tests, benchmarks and the soak: a row per
``POST/DELETE /fapi/v1/order``, ``POST/DELETE /fapi/v1/algoOrder``, cancel-all and countdown
request that reached the exchange (a ``fail_requests`` fault answers at the gateway, so those
never arrive), with its parameters (no signature, timestamp or recvWindow) and the exchange's
answer: accepted with ``orderId``/``algoId`` and the client id, or HTTP status, code and msg.
When a fault hid the answer from the client (``unknown_outcome``), the row also says what the
client got instead (``client_saw``).

``GET /_sim/audit[?api_key=K][&since=SEQ]`` lists rows with ``seq`` greater than SEQ.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from aiohttp import web

from aegis.sim.clock import SimClock

_HIDDEN = frozenset({"signature", "timestamp", "recvWindow"})
_ANSWER_KEYS = ("orderId", "clientOrderId", "status", "algoId", "clientAlgoId", "algoStatus", "code", "msg")
MAX_ROWS = 1_000_000
# This request's row, for a fault to annotate.
AUDIT_ROW: web.RequestKey[dict[str, Any]] = web.RequestKey("aegis_sim_audit_row", dict)


class Audit:
    def __init__(self, clock: SimClock, max_rows: int = MAX_ROWS) -> None:
        self.clock = clock
        self.rows: deque[dict[str, Any]] = deque(maxlen=max_rows)
        self._seq = itertools.count(1)

    def record(
        self, api_key: str, method: str, path: str, params: dict[str, str], status: int, body: Any
    ) -> dict[str, Any]:
        """One request and the exchange's answer; the row is returned so a fault can annotate it."""
        row: dict[str, Any] = {
            "seq": next(self._seq),
            "time": self.clock.now_ms(),
            "api_key": api_key,
            "method": method,
            "path": path,
            "params": {k: v for k, v in params.items() if k not in _HIDDEN},
            "http_status": status,
        }
        if isinstance(body, dict):
            row.update({k: body[k] for k in _ANSWER_KEYS if k in body})
        self.rows.append(row)
        return row

    def select(self, api_key: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["seq"] > since and api_key in (None, r["api_key"])]
