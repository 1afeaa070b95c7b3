"""Binance's error responses: ``{"code": -NNNN, "msg": "..."}`` with an HTTP status.

Texts are Binance's own (see shared/fixtures/binance/error_*.json and the facts file), so
clients that match on codes or messages behave as they would against the real exchange.
"""

from __future__ import annotations

from typing import Any


class BinanceError(Exception):
    """A rejection the exchange reports to the caller; raised anywhere, rendered by the REST layer."""

    def __init__(self, http_status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.http_status = http_status
        self.code = code
        self.msg = msg
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def bad(code: int, msg: str) -> BinanceError:
    """A plain HTTP 400 rejection."""
    return BinanceError(400, code, msg)


def mandatory(name: str) -> BinanceError:
    # Binance lower-cases the parameter name in this message (real recording: 'timeinforce').
    return bad(-1102, f"Mandatory parameter '{name.lower()}' was not sent, was empty/null, or malformed.")


def invalid_param(name: str) -> BinanceError:
    return bad(-1130, f"Data sent for parameter '{name}' is not valid.")


def not_required(name: str) -> BinanceError:
    return bad(-1106, f"Parameter '{name.lower()}' sent when not required.")


def invalid_symbol() -> BinanceError:
    return bad(-1121, "Invalid symbol.")


def bad_api_key() -> BinanceError:
    return BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action")


def api_key_format() -> BinanceError:
    return BinanceError(401, -2014, "API-key format invalid.")


def bad_signature() -> BinanceError:
    return bad(-1022, "Signature for this request is not valid.")


def outside_recv_window() -> BinanceError:
    return bad(-1021, "Timestamp for this request is outside of the recvWindow.")


def ahead_of_server() -> BinanceError:
    return bad(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def unknown_order_cancel() -> BinanceError:
    return bad(-2011, "Unknown order sent.")


def no_such_order() -> BinanceError:
    return bad(-2013, "Order does not exist.")


def margin_insufficient() -> BinanceError:
    return bad(-2019, "Margin is insufficient.")


def reduce_only_rejected() -> BinanceError:
    return bad(-2022, "ReduceOnly Order is rejected.")


def precision() -> BinanceError:
    return bad(-1111, "Precision is over the maximum defined for this asset.")


def use_algo_endpoint() -> BinanceError:
    return bad(
        -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."
    )


def duplicate_client_order_id() -> BinanceError:
    return bad(-4116, "ClientOrderId is duplicated.")


def post_only_rejected() -> BinanceError:
    return bad(
        -5022,
        "Due to the order could not be executed as maker, the Post Only order will be rejected. "
        "The order will not be recorded in the order history",
    )


def fok_rejected() -> BinanceError:
    return bad(
        -5021,
        "Due to the order could not be filled immediately, the FOK order has been rejected. "
        "The order will not be recorded in the order history",
    )


def would_trigger() -> BinanceError:
    return bad(-2021, "Order would immediately trigger.")
