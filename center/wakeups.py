"""When the leader's plan and report loops wake next: pure, from what they hold and the time."""

from __future__ import annotations

PLAN_BATCH_PARTS = 10  # fires are planned once due within lookahead - lookahead / this
# Longest plan wait with nothing to plan sooner. The loop wakes exactly when the next fire
# enters the window and at once on a rule change, so nothing is planned later than by a look
# every 100 ms (DESIGN); this, like the dispatch loop's idle wait, only bounds a missed wake.
PLAN_IDLE_S = 1.0
# Longest report wait with nothing received: a report arriving wakes the loop.
REPORTS_IDLE_S = 1.0


def plan_wait_s(
    next_fire_us: int | None, now: int, *, lookahead_us: int, tick_s: float, pending: bool
) -> float:
    """Until the next fire enters the planned window (its last tenth, where `plan_once`
    plans), never sooner than a tick (a burst is planned in chunks a tick apart), at most
    PLAN_IDLE_S; a tick while fires wait for an agent or for their write to be retried."""
    if pending:
        return tick_s
    if next_fire_us is None:
        return PLAN_IDLE_S
    plan_at = next_fire_us - lookahead_us + lookahead_us // PLAN_BATCH_PARTS
    return min(max((plan_at - now) / 1e6, tick_s), PLAN_IDLE_S)


def reports_wait_s(since_last_s: float, *, tick_s: float) -> float:
    """How long to gather reports once woken: the rest of a tick since the last write (one
    transaction per tick at most, as with a fixed tick), and half a tick at least, so that
    the reports of one second's fires, which come together, are written together (a fixed
    tick made them wait half a tick on average too)."""
    return max(tick_s - since_last_s, tick_s / 2)
