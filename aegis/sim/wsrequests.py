"""What a stream connection carries besides events: JSON requests in, answers and envelopes out.

Market and private connections both take Binance's ``{"method": ..., "params": [...], "id": ...}``
requests (SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS...) and answer ``{"result": ..., "id": ...}``
or ``{"error": {"code": n, "msg": ...}, "id": ...}``; in combined (``/stream``) mode every event
goes out in the ``{"stream": <name>, "data": <event>}`` envelope.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from aegis.sim.wsconn import WsConn


class WsRequestError(Exception):
    """A malformed or refused request; answered with Binance's ``error`` object."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def wrap(stream: str, raw: bytes) -> bytes:
    """Combined-mode envelope around an already encoded payload (no re-encoding)."""
    return b'{"stream":"' + stream.encode() + b'","data":' + raw + b"}"


def parse_request(text: str) -> dict[str, Any]:
    try:
        req = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise WsRequestError(3, f"Invalid JSON: {exc}") from exc
    if not isinstance(req, dict):
        raise WsRequestError(2, "Invalid request: request must be an object")
    req_id = req.get("id")
    if req_id is not None and not isinstance(req_id, int | str):
        raise WsRequestError(2, "Invalid request: request ID must be an unsigned integer")
    for key in req:
        if key not in ("method", "params", "id"):
            raise WsRequestError(0, "Unknown property")
    return req


def string_params(params: Any) -> list[str]:
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise WsRequestError(1, "Invalid value type: expected array of strings")
    return params


def answer(conn: WsConn, text: str, apply: Callable[[dict[str, Any]], Any]) -> None:
    """Parse one request, run ``apply`` on it and send its result or Binance's error object."""
    req_id: Any = None
    try:
        req = parse_request(text)
        req_id = req.get("id")
        result = apply(req)
    except WsRequestError as err:
        conn.send(orjson.dumps({"error": {"code": err.code, "msg": err.msg}, "id": req_id}))
        return
    conn.send(orjson.dumps({"result": result, "id": req_id}))
