"""What the user stream tells operators: /health problems and the /state block."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aegis.redact import key_prefix
from aegis.state import StatusValue

if TYPE_CHECKING:
    from aegis.account.stream import UserStream

__all__ = ["problems", "status"]


def problems(stream: UserStream) -> list[str]:
    """Why the account view may be wrong right now (for /health); empty when all is well."""
    out: list[str] = []
    now = stream._clock.now_ms()
    if (
        stream._down_since_ms is not None
        and now - stream._down_since_ms >= stream.disconnected_problem_after_s * 1000
    ):
        out.append(f"user stream disconnected for {(now - stream._down_since_ms) / 1000:.0f} s")
    if stream.keeper.key is None:
        out.append("no listenKey" + (f" ({stream._need_key})" if stream._need_key else ""))
    elif stream.keeper.presumed_expired():
        out.append("listenKey presumably expired (no successful keepalive for 60 min)")
    elif (overdue := _keepalive_overdue_s(stream, now)) is not None:
        out.append(f"listenKey keepalive overdue: the last success was {overdue:.0f} s ago")
    if stream.keeper.keepalive_failures:
        out.append(
            f"listenKey keepalive failing ({stream.keeper.keepalive_failures} in a row): {stream.keeper.last_error}"
        )
    if stream.apply_errors:
        out.append(f"{stream.apply_errors} user events could not be applied (see the log)")
    if stream.crosscheck_diffs:
        out.append(
            f"user stream was silent and REST disagreed with the state ({len(stream.crosscheck_diffs)} differences)"
        )
    return out

def status(stream: UserStream) -> dict[str, StatusValue]:
    """Flat scalars for /state: connection, key, keepalive, events, reconnects, rotations."""
    now = stream._clock.now_ms()
    link = stream._link
    keeper = stream.keeper
    counters = stream.applier.counters
    since = link.connected_since_ms if link is not None else None
    return {
        "connected": since is not None,
        "connected_since_ms": since,
        "down_since_ms": stream._down_since_ms,
        "listen_key": key_prefix(keeper.key),
        "key_age_s": _age(now, keeper.created_ms),
        "key_expires_in_s": None if keeper.expires_at_ms() is None else _age(keeper.expires_at_ms(), now),
        "last_keepalive_ms": keeper.last_ok_ms,
        "keepalives": keeper.keepalives,
        "keepalive_failures": keeper.keepalive_failures,
        "keys_created": keeper.keys_created,
        "last_event_ms": stream.last_event_ms,
        "last_event_age_s": _age(now, stream.last_event_ms),
        "events": stream.events,
        "applied": counters.applied,
        "duplicates": counters.duplicates,
        "stale": counters.stale,
        "fills": counters.fills,
        "parse_errors": stream.parse_errors,
        "apply_errors": stream.apply_errors,
        "unknown_events": stream.unknown_events,
        "connects": stream.connects,
        "reconnects": stream.reconnects,
        "rotations": stream.rotations,
        "crosschecks": stream.crosschecks,
        "reconcile_requests": stream.reconcile.total,
        "last_disconnect_reason": stream.last_disconnect_reason or None,
    }


def _keepalive_overdue_s(stream: UserStream, now_ms: int) -> float | None:
    """Seconds since the last successful keepalive when one is late by more than a quarter of the
    key's remaining life (a keepalive stuck behind a REST pause fails nothing, yet the key dies)."""
    keeper = stream.keeper
    if keeper.last_ok_ms is None:
        return None
    age_s = (now_ms - keeper.last_ok_ms) / 1000
    grace_s = (keeper.lifetime_s - keeper.keepalive_interval_s) / 4
    return age_s if age_s > keeper.keepalive_interval_s + grace_s else None


def _age(now_ms: int | None, then_ms: int | None) -> float | None:
    if now_ms is None or then_ms is None:
        return None
    return round((now_ms - then_ms) / 1000, 3)
