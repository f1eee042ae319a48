"""Login throttling maths: free failures, then doubling waits up to a cap, forgotten when quiet."""

from __future__ import annotations

from admin.throttle import ThrottlePolicy, ThrottleState, after_failure, current, wait_s

S = 1_000_000
POLICY = ThrottlePolicy(free_failures=3, backoff_s=1.0, backoff_max_s=8.0, forget_s=60.0)


def _fail(times: int, start: int = 0, step: int = S) -> ThrottleState:
    state = ThrottleState()
    for i in range(times):
        state = after_failure(state, POLICY, start + i * step)
    return state


def test_free_failures_do_not_block():
    """The first `free_failures` failures never make anyone wait."""
    state = _fail(3)
    assert state.failures == 3 and wait_s(state, 2 * S) == 0


def test_waits_double_up_to_the_cap():
    """Each failure past the free ones doubles the wait: 1, 2, 4, 8, 8 s."""
    waits = []
    state = _fail(3)
    for i in range(5):
        now = (10 + i) * S
        state = after_failure(state, POLICY, now)
        waits.append(wait_s(state, now))
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_wait_runs_out():
    """The block ends at its time."""
    state = after_failure(_fail(3), POLICY, 10 * S)
    assert wait_s(state, 10 * S + S // 2) == 0.5
    assert wait_s(state, 11 * S) == 0


def test_quiet_period_forgets_failures():
    """After `forget_s` without failures, the count starts again from zero."""
    state = _fail(10)
    later = state.last_us + 61 * S
    assert current(state, POLICY, later) == ThrottleState()
    assert after_failure(state, POLICY, later).failures == 1


def test_huge_failure_counts_do_not_overflow():
    """A million failures still give the capped wait."""
    state = ThrottleState(failures=1_000_000, last_us=0)
    assert wait_s(after_failure(state, POLICY, S), S) == 8.0
