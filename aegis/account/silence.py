"""The user stream's silence check: an open socket does not prove that events are flowing.

After ``silence_threshold_s`` without an event, the stream's view is compared with a REST
snapshot (the reconciler's differ). If they disagree, a reconciliation is requested and the
socket is pinged: no pong (half-open) reconnects at once; a live socket that still misses
changes a silence period later is reconnected too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loguru import logger

from aegis.reconcile.diff import diff
from aegis.reconcile.reconciler import fetch_snapshot

if TYPE_CHECKING:
    from aegis.account.stream import UserStream

__all__ = ["crosscheck", "due"]


def due(stream: UserStream, now_ms: int) -> bool:
    """Nothing arrived (and nothing was checked) for a silence threshold."""
    link = stream._link
    if link is None or link.connected_since_ms is None:
        return False
    last = max(stream._last_activity_ms or 0, stream._last_crosscheck_ms or 0)
    return now_ms - last >= stream.silence_threshold_s * 1000

async def crosscheck(stream: UserStream) -> None:
    """Silent for a while: is that an idle account or a dead stream? Ask REST."""
    stream._last_crosscheck_ms = stream._clock.now_ms()
    before = (stream.events, stream._queue.qsize())
    try:
        snapshot = await fetch_snapshot(stream._rest, stream._server_time)
    except Exception as exc:
        logger.warning("user stream cross-check failed: {}: {}", type(exc).__name__, exc)
        return
    if (stream.events, stream._queue.qsize()) != before:
        return  # events arrived meanwhile: the stream is alive
    diffs = [str(m) for m in diff(stream._state, snapshot)]
    stream.crosscheck_diffs = diffs
    stream.crosschecks += 1  # completed comparisons
    if not diffs:
        stream._crosscheck_strikes = 0
        logger.debug("user stream silent but consistent with REST")
        return
    summary = "; ".join(diffs[:5]) + (f" (+{len(diffs) - 5} more)" if len(diffs) > 5 else "")
    # A strike only counts if a reconciler took the earlier requests: without one, the store
    # cannot converge and reconnecting would not help.
    reconciled = stream.reconcile.pending == 0
    stream.reconcile.request("user stream", f"silent and REST disagrees: {summary}")
    stream._crosscheck_strikes = stream._crosscheck_strikes + 1 if reconciled else 0
    link = stream._link
    if link is not None and not await link.conn.probe():
        # Events were lost and the socket does not answer a ping: half-open. Waiting for the
        # heartbeat would leave the account blind for another ping interval; on a fast
        # clock the reconciliation would even make the next check agree and hide it.
        stream._crosscheck_strikes = 0
        link.conn.reconnect("silent while REST disagrees, and no pong to a ping")
    elif link is not None and stream._crosscheck_strikes >= 2:
        # A reconciliation had a whole silence period to fix the store and it still differs:
        # changes are happening that this connection does not deliver. Suspect the stream.
        stream._crosscheck_strikes = 0
        link.conn.reconnect("silent while REST disagrees twice in a row")
