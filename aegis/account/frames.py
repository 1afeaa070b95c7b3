"""Frames of the user data stream into events: a malformed or unknown one is logged and skipped.

A frame that does not parse is logged with its payload (truncated) and counted; an event type the
engine does not use (Binance adds some: STRATEGY_UPDATE, GRID_UPDATE...) is logged once as such.
Neither ever stops the stream.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from loguru import logger

from aegis.binance.errors import ParseError
from aegis.binance.parse import parse_user_event
from aegis.domain import UserEvent

__all__ = ["decode"]

Verdict = Literal["event", "malformed", "unknown"]


class _Head(msgspec.Struct):
    e: str = "?"


_HEAD = msgspec.json.Decoder(_Head)


def decode(raw: str | bytes) -> tuple[UserEvent | None, Verdict]:
    try:
        event = parse_user_event(raw)
    except ParseError as exc:
        logger.error("user stream: malformed message skipped ({}): {!s}", exc.message, _text(raw))
        return None, "malformed"
    if event is None:
        try:
            kind = _HEAD.decode(raw).e
        except (msgspec.DecodeError, msgspec.ValidationError):
            kind = "?"
        logger.info("user stream: event type {!r} not used, skipped: {!s}", kind, _text(raw))
        return None, "unknown"
    return event, "event"


def _text(raw: str | bytes, limit: int = 4000) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text if len(text) <= limit else text[:limit] + "…"
