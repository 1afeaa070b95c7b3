"""What the market feed tells operators: /health problems, the /state block, the terminal summary.

Read-only views over the feed's per-symbol tracks and connections, kept apart from the feed's I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aegis.domain import MINUTE_MS
from aegis.market.view import FeedSummary
from aegis.state import StatusValue

if TYPE_CHECKING:
    from aegis.market.feed import MarketFeed

__all__ = ["problems", "status", "summary"]


def problems(feed: MarketFeed) -> list[str]:
    """/health: silent or down connections, symbols not ready, stale candles, failing gap fills."""
    if not feed.started:
        return []
    out: list[str] = []
    now = feed._clock.monotonic()
    stale = feed.settings.stale_after_s
    for index, conn in enumerate(feed.connections):
        down = feed._down_since.get(index)
        if down is not None and now - down > stale:
            out.append(
                f"market stream {conn.name} down for {now - down:.0f} s ({conn.last_disconnect_reason})"
            )
        elif conn.last_message_at is not None and now - conn.last_message_at > stale:
            out.append(f"market stream {conn.name} silent for {now - conn.last_message_at:.0f} s")
    unready = [s.symbol for s in feed._symbols.values() if not s.ready]
    if unready:
        out.append(
            f"market: {len(unready)} of {len(feed._symbols)} symbols not warmed up ({', '.join(unready[:5])})"
        )
    out += _candle_age_problems(feed)
    for s in feed._symbols.values():
        if s.error:
            out.append(f"market {s.symbol}: backfill failing: {s.error}")
        elif s.pending_since is not None and now - s.pending_since > 5 * 60:
            out.append(f"market {s.symbol}: {len(s.pending)} closed candles waiting for a gap fill")
    return out

def _candle_age_problems(feed: MarketFeed) -> list[str]:
    """A symbol whose newest closed candle is too old is stale, whatever its socket says."""
    now_ms = feed._server.now_ms()
    limit_ms = feed.settings.candle_stale_after_s * 1000
    old = [
        (s.symbol, (now_ms - (s.stored_last + MINUTE_MS)) / 1000)
        for s in feed._symbols.values()
        if s.ready and s.stored_last is not None and now_ms - (s.stored_last + MINUTE_MS) > limit_ms
    ]
    if not old:
        return []
    worst = ", ".join(f"{sym} {age:.0f} s" for sym, age in sorted(old, key=lambda x: -x[1])[:5])
    return [f"market: newest closed candle too old for {len(old)} symbol(s) ({worst})"]

def status(feed: MarketFeed) -> dict[str, StatusValue]:
    """Flat scalars for /state: totals, one block per connection, one per symbol."""
    syms = feed._symbols.values()
    now = feed._clock.monotonic()
    stats = feed.backfill.stats
    out: dict[str, StatusValue] = {
        "symbols": len(feed._symbols),
        "ready": sum(1 for s in syms if s.ready),
        "connections": len(feed.connections),
        "connected": sum(1 for c in feed.connections if c.connected.is_set()),
        "reconnects": sum(c.reconnects for c in feed.connections),
        "messages": sum(c.messages for c in feed.connections),
        "updates": feed.updates,
        "closed": sum(s.closed for s in syms),
        "parse_errors": feed.bad_candles + sum(c.parse_errors for c in feed.connections),
        "duplicates": sum(s.duplicates for s in syms),
        "out_of_order": sum(s.out_of_order for s in syms),
        "already_stored": sum(s.already_stored for s in syms),  # stream repeated what REST gave
        "gaps": sum(s.gaps for s in syms),
        "gaps_backfilled": sum(s.backfilled for s in syms),
        "holes": sum(len(s.holes) for s in syms),
        "pending": sum(len(s.pending) for s in syms),
        "rest_requests": stats.requests,
        "rest_weight": stats.weight,
        "rest_weight_warmup": stats.weight_by_purpose.get("warmup", 0),
        "rest_rate_limited": stats.rate_limited,
        "rest_retries": stats.retries,
    }
    for index, conn in enumerate(feed.connections):
        key = f"conn.{conn.name}"
        age = None if conn.last_message_at is None else round(now - conn.last_message_at, 3)
        out[f"{key}.connected"] = conn.connected.is_set()
        out[f"{key}.streams"] = len(feed._groups[index])
        out[f"{key}.reconnects"] = conn.reconnects
        out[f"{key}.messages"] = conn.messages
        out[f"{key}.last_message_age_s"] = age
        out[f"{key}.last_disconnect"] = conn.last_disconnect_reason or None
    for s in syms:
        key = f"symbol.{s.symbol}"
        out[f"{key}.ready"] = s.ready
        out[f"{key}.last_closed_ms"] = s.stored_last
        out[f"{key}.holes"] = len(s.holes)
        out[f"{key}.duplicates"] = s.duplicates
        out[f"{key}.out_of_order"] = s.out_of_order
        out[f"{key}.gaps"] = s.gaps
        out[f"{key}.gaps_backfilled"] = s.backfilled
        out[f"{key}.reconnects"] = feed.connections[s.connection].reconnects if feed.connections else 0
        out[f"{key}.error"] = s.error or None
    return out

def summary(feed: MarketFeed) -> FeedSummary:
    """The few numbers an operator watches (terminal status line)."""
    syms = feed._symbols.values()
    lasts = [s.stored_last for s in syms if s.stored_last is not None]
    return FeedSummary(
        symbols=len(feed._symbols),
        ready=sum(1 for s in syms if s.ready),
        warmed=sum(1 for s in syms if s.warmed),
        last_closed_ms=min(lasts) if lasts else None,
        holes=sum(len(s.holes) for s in syms),
        reconnects=sum(c.reconnects for c in feed.connections),
        pending=sum(len(s.pending) for s in syms),
    )
