"""The plan and report loops' waits, and a loop woken by events: at once when woken, asleep
when idle (steps counted, not time measured)."""

from __future__ import annotations

import asyncio

import pytest

from center.loops import Wake, every
from center.metrics import CenterMetrics
from center.wakeups import PLAN_IDLE_S, plan_wait_s, reports_wait_s

S = 1_000_000
NOW = 1_767_225_600_000_000
LOOKAHEAD = 10 * S
TICK = 0.05


@pytest.mark.parametrize(
    ("next_fire_us", "pending", "expected"),
    [
        (None, False, PLAN_IDLE_S),  # nothing to plan: the idle bound
        (None, True, TICK),  # fires waiting for an agent or a write: every tick
        (NOW + 60 * S, True, TICK),
        (NOW + 60 * S, False, PLAN_IDLE_S),  # far away: the idle bound
        (NOW + 9 * S + 30_000, False, TICK),  # enters the window in 30 ms: not before a tick
        (NOW + 9 * S + 80_000, False, 0.08),  # in 80 ms: exactly then
        (NOW + 9 * S + 500_000, False, 0.5),
        (NOW + 9 * S, False, TICK),  # in the window now (a burst's next chunk): a tick on
        (NOW + S, False, TICK),
    ],
)
def test_plan_wait(next_fire_us: int | None, pending: bool, expected: float) -> None:
    got = plan_wait_s(next_fire_us, NOW, lookahead_us=LOOKAHEAD, tick_s=TICK, pending=pending)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("since_last_s", "expected"),
    # at most one write per tick, gathering half a tick at least
    [(0.0, TICK), (0.02, 0.03), (0.04, TICK / 2), (TICK, TICK / 2), (3.0, TICK / 2)],
)
def test_reports_gather_the_rest_of_a_tick(since_last_s: float, expected: float) -> None:
    assert reports_wait_s(since_last_s, tick_s=TICK) == pytest.approx(expected)


async def test_a_woken_loop_steps_once_per_wake_and_not_while_idle() -> None:
    """Each `set` runs the step at once (well within the idle wait of an hour); with nothing
    set the loop does not step again: it does not spin."""
    wake, stepped, steps = Wake(), asyncio.Event(), 0

    async def step() -> None:
        nonlocal steps
        steps += 1
        stepped.set()

    loop = asyncio.create_task(
        every("test", step, 0.05, CenterMetrics(), pause=lambda: wake.wait(3600))
    )
    try:
        for expected in (1, 2, 3):
            async with asyncio.timeout(5):
                await stepped.wait()
            stepped.clear()
            assert steps == expected
            for _ in range(20):  # the loop gets the CPU many times: still no step unwoken
                await asyncio.sleep(0)
            assert steps == expected and wake.steps == expected - 1
            wake.set()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_a_wake_set_during_the_step_is_not_lost() -> None:
    """A report arriving while the loop writes the last ones: the next wait ends at once."""
    wake = Wake()
    wake.set()
    async with asyncio.timeout(5):
        await wake.wait(3600)
    assert wake.steps == 1
    wake.set()
    wake.set()  # twice before the wait: one step, not two
    async with asyncio.timeout(5):
        await wake.wait(3600)
    assert wake.steps == 2
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await wake.wait(3600)
