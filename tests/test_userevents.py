"""Applying user stream events: the account view is right whatever order or how often they arrive."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.account.applier import Outcome, RecentSet, UserEventApplier
from aegis.domain import OrderStatus, OrderUpdate, UserEvent
from aegis.state import AccountSnapshot, StateStore
from tests.factories import order
from tests.userstream_payloads import (
    SYMBOL,
    T0,
    account_update,
    algo_update,
    event,
    open_sequence,
    otu,
    trade_lite,
)


async def test_fill_before_new_ack_ends_with_position_no_open_order_and_one_fill() -> None:
    store = StateStore()
    applier = UserEventApplier(store)
    outcomes = [await applier.apply(e) for e in open_sequence()]
    snap = store.snapshot()
    assert snap.open_orders == {}
    assert snap.positions[SYMBOL].amount == Decimal("0.002")
    assert snap.balances["USDT"].wallet_balance == Decimal("642.76097079")
    fills = store.recent_fills()
    assert len(fills) == 1 and applier.counters.fills == 1
    # TRADE_LITE has no fee; the later ORDER_TRADE_UPDATE refines the stored fill instead of adding one.
    assert fills[0].commission == Decimal("0.09173990") and fills[0].commission_asset == "USDT"
    assert outcomes == [Outcome.APPLIED] * 4


async def test_late_new_after_filled_does_not_reopen_the_order() -> None:
    store = StateStore()
    applier = UserEventApplier(store)
    seq = open_sequence()
    new, filled = seq[1], seq[3]
    await applier.apply(filled)
    assert await applier.apply(new) is Outcome.STALE
    assert store.snapshot().open_orders == {}
    known = store.order_by_id(SYMBOL, 482255808281)
    assert known is not None and known.status is OrderStatus.FILLED


async def test_every_event_twice_as_during_rotation_overlap_gives_the_same_state() -> None:
    once, twice = StateStore(), StateStore()
    a1, a2 = UserEventApplier(once), UserEventApplier(twice)
    seq = [*open_sequence(), event(otu(7, "resting", x="NEW", status="NEW", t=T0 + 5))]
    for e in seq:
        await a1.apply(e)
    for e in seq:  # interleaved: old connection, new connection
        await a2.apply(e)
        await a2.apply(e)
    s1, s2 = once.snapshot(), twice.snapshot()
    assert (s1.open_orders, s1.positions, s1.balances) == (s2.open_orders, s2.positions, s2.balances)
    assert list(s2.open_orders) == ["resting"]
    assert a2.counters.fills == 1 and a2.counters.duplicates == len(seq)


async def test_partial_fill_then_cancel_closes_and_late_partial_is_ignored() -> None:
    store = StateStore()
    applier = UserEventApplier(store)
    new = event(otu(9, "p", x="NEW", status="NEW", qty="0.010", t=T0))
    part = event(
        otu(
            9,
            "p",
            x="TRADE",
            status="PARTIALLY_FILLED",
            qty="0.010",
            filled="0.004",
            last="0.004",
            trade_id=1,
            t=T0 + 1,
        )
    )
    cancel = event(otu(9, "p", x="CANCELED", status="CANCELED", qty="0.010", filled="0.004", t=T0 + 2))
    await applier.apply(new)
    await applier.apply(part)
    assert store.snapshot().open_orders["p"].executed_qty == Decimal("0.004")
    await applier.apply(cancel)
    assert "p" not in store.snapshot().open_orders
    # The same partial fill, seen again on the other connection after the cancel: nothing moves back.
    assert await applier.apply(part) is Outcome.DUPLICATE
    assert "p" not in store.snapshot().open_orders
    assert applier.counters.fills == 1


async def test_amendment_with_a_later_update_time_replaces_the_price() -> None:
    store = StateStore()
    applier = UserEventApplier(store)
    await applier.apply(event(otu(3, "amend", x="NEW", status="NEW", price="90000.00", t=T0)))
    await applier.apply(event(otu(3, "amend", x="AMENDMENT", status="NEW", price="90100.00", t=T0 + 10)))
    await applier.apply(
        event(otu(3, "amend", x="NEW", status="NEW", price="90000.00", t=T0 + 1))
    )  # older, late
    assert store.snapshot().open_orders["amend"].price == Decimal("90100.00")


async def test_stream_does_not_regress_an_order_another_writer_advanced() -> None:
    store = StateStore()
    applier = UserEventApplier(store)
    ahead = msgspec.structs.replace(
        order("mine", OrderStatus.PARTIALLY_FILLED), executed_qty=Decimal("0.005")
    )
    await store.apply_order(ahead)  # e.g. the order manager, from a REST answer
    late_new = event(otu(ahead.order_id, "mine", x="NEW", status="NEW", qty="0.010", t=T0))
    assert await applier.apply(late_new) is Outcome.STALE
    assert store.snapshot().open_orders["mine"].executed_qty == Decimal("0.005")


async def test_older_account_update_does_not_overwrite_a_newer_position() -> None:
    store = StateStore()
    applier = UserEventApplier(store)
    await applier.apply(event(account_update("0.004", "600", t=T0 + 100)))
    assert await applier.apply(event(account_update("0.002", "650", t=T0))) is Outcome.STALE
    snap = store.snapshot()
    assert snap.positions[SYMBOL].amount == Decimal("0.004")
    assert snap.balances["USDT"].wallet_balance == Decimal("600")
    await applier.apply(event(account_update("0", "601", t=T0 + 200)))
    assert SYMBOL not in store.snapshot().positions


async def test_algo_orders_are_tracked_until_triggered() -> None:
    store = StateStore()
    applier = UserEventApplier(store)
    await applier.apply(event(algo_update(11, "NEW")))
    assert [a.algo_id for a in store.open_algo_orders()] == [11]
    await applier.apply(event(algo_update(11, "TRIGGERED", t=T0 + 1)))
    assert store.open_algo_orders() == []
    # A late NEW of the same conditional order cannot bring it back.
    assert await applier.apply(event(algo_update(11, "NEW", t=T0 + 2))) is Outcome.STALE
    assert store.open_algo_orders() == []


async def test_a_failing_listener_does_not_stop_events_being_applied() -> None:
    store = StateStore()
    applier = UserEventApplier(store)
    seen: list[str] = []

    def broken(_: object) -> None:
        raise RuntimeError("journal down")

    store.on_fill(broken)
    store.on_fill(lambda f: seen.append(f"{f.client_order_id} fee {f.commission_asset or '-'}"))
    for e in open_sequence():
        await applier.apply(e)
    # TRADE_LITE first (no fee), then the fee-bearing copy from ORDER_TRADE_UPDATE: the same trade.
    assert seen == ["android_MLA5BSDBdSD12WPlEyMh fee -", "android_MLA5BSDBdSD12WPlEyMh fee USDT"]
    assert store.snapshot().positions[SYMBOL].amount == Decimal("0.002")


def test_recent_set_forgets_the_oldest_beyond_capacity() -> None:
    recent: RecentSet[int] = RecentSet(2)
    assert recent.add(1) and recent.add(2) and not recent.add(1)
    assert recent.add(3)
    assert 1 not in recent and len(recent) == 2


def _lifecycle() -> list[UserEvent]:
    """New, two partial fills (each also as TRADE_LITE), final fill, for one order of 0.010."""
    cid, oid = "life", 42
    return [
        event(otu(oid, cid, x="NEW", status="NEW", qty="0.010", t=T0)),
        event(trade_lite(oid, cid, last="0.003", trade_id=101, t=T0 + 1)),
        event(otu(oid, cid, x="TRADE", status="PARTIALLY_FILLED", qty="0.010", filled="0.003", last="0.003", trade_id=101, t=T0 + 1)),
        event(trade_lite(oid, cid, last="0.004", trade_id=102, t=T0 + 2)),
        event(otu(oid, cid, x="TRADE", status="PARTIALLY_FILLED", qty="0.010", filled="0.007", last="0.004", trade_id=102, t=T0 + 2)),
        event(otu(oid, cid, x="TRADE", status="FILLED", qty="0.010", filled="0.010", last="0.003", trade_id=103, t=T0 + 3)),
    ]  # fmt: skip


LIFECYCLE = _lifecycle()


@settings(max_examples=200, deadline=None)
@given(
    order_=st.permutations(range(len(LIFECYCLE))),
    repeats=st.lists(st.integers(0, len(LIFECYCLE) - 1), max_size=8),
    cut=st.integers(1, len(LIFECYCLE)),
)
def test_any_arrival_order_with_repeats_converges_to_the_latest_state(
    order_: list[int], repeats: list[int], cut: int
) -> None:
    """Whatever subset arrived, in whatever order and however often, the result is what the
    most advanced event says, and each trade counts once."""
    delivered = [LIFECYCLE[i] for i in order_[:cut]] + [LIFECYCLE[i] for i in repeats]

    async def scenario() -> tuple[StateStore, UserEventApplier]:
        store = StateStore()
        applier = UserEventApplier(store)
        for e in delivered:
            await applier.apply(e)
        return store, applier

    store, applier = asyncio.run(scenario())
    got = {i for i in set(order_[:cut]) | set(repeats)}
    otus = [LIFECYCLE[i] for i in sorted(got) if i in (0, 2, 4, 5)]
    trades = {LIFECYCLE[i].fill.trade_id for i in got if LIFECYCLE[i].fill is not None}  # type: ignore[union-attr]
    assert applier.counters.fills == len(trades)
    open_orders = store.snapshot().open_orders
    if not otus:
        assert open_orders == {}
        return
    latest = otus[-1].order  # type: ignore[union-attr]
    if latest.status.is_open:
        assert open_orders["life"].executed_qty == latest.executed_qty
    else:
        assert "life" not in open_orders


async def test_events_older_than_an_adopted_snapshot_cannot_undo_it() -> None:
    store = StateStore()
    applier = UserEventApplier(store)
    update = event(
        otu(5, "rest", x="TRADE", status="PARTIALLY_FILLED", qty="0.010", filled="0.004", last="0.004", trade_id=9, t=T0 + 90)
    )  # fmt: skip
    assert isinstance(update, OrderUpdate)
    resting = update.order  # as the reconciler's GET openOrders reports it
    as_of = T0 + 100
    await store.adopt_snapshot(AccountSnapshot(as_of, (), (resting,), (), ()))
    # Queued from before the snapshot: an order that has closed since, the resting one's NEW, a position.
    assert await applier.apply(event(otu(4, "gone", x="NEW", status="NEW", t=T0 + 50))) is Outcome.STALE
    assert (
        await applier.apply(event(otu(5, "rest", x="NEW", status="NEW", qty="0.010", t=T0 + 10)))
        is Outcome.STALE
    )
    assert await applier.apply(event(account_update("0.002", "650", t=T0 + 100))) is Outcome.STALE
    snap = store.snapshot()
    assert list(snap.open_orders) == ["rest"] and snap.positions == {} and snap.balances == {}
    # After the snapshot: applied as usual.
    await applier.apply(event(otu(5, "rest", x="TRADE", status="FILLED", qty="0.010", filled="0.010", last="0.006", trade_id=10, t=T0 + 150)))  # fmt: skip
    await applier.apply(event(account_update("0.010", "640", t=T0 + 150)))
    snap = store.snapshot()
    assert snap.open_orders == {} and snap.positions[SYMBOL].amount == Decimal("0.010")
