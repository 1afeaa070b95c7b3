"""RateGovernor: callers queue under the budget, orders go first, 429/418 stops everything.

On virtual time at speed 1 the governor's windows are the loop's seconds: "goes at once" means
no loop time passed, and a wait for the next window is exactly that long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aegis.binance.constants import klines_weight
from aegis.binance.ratelimit import Cost, Permit, Priority, RateGovernor, RateLimits
from aegis.clock import Clock

MINUTE = 60_000
START = 28_333_333 * MINUTE + 1_000  # one second into a minute window


async def at_once(acquire: Awaitable[Permit]) -> Permit:
    """Await an admission and check that no loop (engine) time passed for it."""
    loop = asyncio.get_running_loop()
    before = loop.time()
    permit = await acquire
    assert loop.time() == before, "the caller had to wait"
    return permit


def fast_clock(speed: float = 1.0) -> Clock:
    """Engine time from START (speed 1: loop seconds are engine seconds)."""
    return Clock(speed=speed, start_ms=START)


async def test_callers_over_the_budget_wait_for_the_next_window_instead_of_failing() -> None:
    clock = fast_clock()
    gov = RateGovernor(clock, RateLimits(weight_per_minute=100), share=0.5)
    for _ in range(5):
        await at_once(gov.acquire(Cost(10), Priority.ORDER))
    assert gov.used_weight == 50
    permit = await asyncio.wait_for(gov.acquire(Cost(10), Priority.ORDER), 120.0)
    assert permit.minute == START // MINUTE + 1  # admitted only once the window rolled
    assert clock.now_ms() >= (START // MINUTE + 1) * MINUTE


async def test_lower_priorities_leave_headroom_for_orders_and_cancels() -> None:
    gov = RateGovernor(fast_clock(speed=1), RateLimits(weight_per_minute=100), share=1.0)
    await gov.acquire(Cost(80), Priority.BACKFILL)  # backfill may fill 80 %
    backfill = asyncio.create_task(gov.acquire(Cost(1), Priority.BACKFILL))
    await asyncio.sleep(30)
    assert not backfill.done()
    await at_once(gov.acquire(Cost(1), Priority.ORDER))  # a cancel still goes at once
    backfill.cancel()


async def test_pause_stops_all_callers_then_drains_them_by_priority() -> None:
    clock = fast_clock()
    gov = RateGovernor(clock)
    gov.pause_for(30, "429 in test")
    order: list[str] = []

    async def caller(name: str, prio: Priority) -> None:
        await gov.acquire(Cost(1), prio)
        order.append(name)

    tasks = [
        asyncio.create_task(caller("backfill-1", Priority.BACKFILL)),
        asyncio.create_task(caller("backfill-2", Priority.BACKFILL)),
        asyncio.create_task(caller("account", Priority.ACCOUNT)),
        asyncio.create_task(caller("order", Priority.ORDER)),
    ]
    await asyncio.sleep(29)
    assert order == [] and gov.queued == 4
    await asyncio.wait_for(asyncio.gather(*tasks), 2.0)
    assert order == ["order", "account", "backfill-1", "backfill-2"]
    assert clock.now_ms() >= gov.paused_until_ms


async def test_a_pause_is_never_shortened_by_a_later_shorter_one() -> None:
    gov = RateGovernor(fast_clock(speed=1))
    gov.pause_for(120, "418 ban")
    until = gov.paused_until_ms
    gov.pause_for(1, "429")
    assert gov.paused_until_ms == until


async def test_used_weight_header_from_the_exchange_raises_our_count_in_any_case() -> None:
    gov = RateGovernor(fast_clock(speed=1), RateLimits(weight_per_minute=1000))
    permit = await gov.acquire(Cost(1))
    gov.observe(permit, {"X-MBX-USED-WEIGHT-1M": "700"})
    assert gov.used_weight == 700
    gov.observe(
        permit, {"x-mbx-used-weight-1m": "750", "x-mbx-order-count-10s": "3", "X-Mbx-Order-Count-1m": "9"}
    )
    assert gov.used_weight == 750 and gov.order_counts == (3, 9)
    gov.observe(permit, {"x-mbx-used-weight-1m": "garbage"})
    assert gov.used_weight == 750


async def test_headers_answered_for_a_previous_window_do_not_inflate_the_new_one() -> None:
    clock = fast_clock()
    gov = RateGovernor(clock)
    permit = await gov.acquire(Cost(1))
    await clock.sleep(60)
    gov.observe(permit, {"x-mbx-used-weight-1m": "2000"})
    assert gov.used_weight == 0


async def test_order_counters_limit_placements_per_ten_seconds() -> None:
    clock = fast_clock()
    gov = RateGovernor(clock, RateLimits(orders_per_10s=4), share=1.0)
    for _ in range(4):
        await gov.acquire(Cost(0, orders=1), Priority.ORDER)
    window = clock.now_ms() // 10_000
    permit = await asyncio.wait_for(gov.acquire(Cost(0, orders=1), Priority.ORDER), 11.0)
    assert permit.ten_seconds > window


def test_klines_weight_follows_the_limit_table() -> None:
    assert [klines_weight(n) for n in (1, 99, 100, 499, 500, 1000, 1001, 1500)] == [1, 1, 2, 2, 5, 5, 10, 10]


async def test_an_absurd_pause_is_capped_at_binance_longest_ban() -> None:
    clock = fast_clock(speed=1)
    gov = RateGovernor(clock)
    gov.pause_for(float("inf"), "absurd")
    assert gov.paused_until_ms - clock.now_ms() <= 3 * 24 * 3600 * 1000
