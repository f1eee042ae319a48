"""Login throttling maths: after some free failures, each failure blocks for twice as long."""

from __future__ import annotations

from dataclasses import dataclass

# Pure: states and `now_us` come in as arguments; queries/throttle.py stores the states.

_US = 1_000_000


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    free_failures: int  # failures allowed before any wait
    backoff_s: float  # the first wait; it doubles with each further failure
    backoff_max_s: float  # the longest wait
    forget_s: float  # failures older than this (since the last one) are forgotten


@dataclass(frozen=True, slots=True)
class ThrottleState:
    failures: int = 0
    last_us: int = 0
    blocked_until_us: int = 0


def current(state: ThrottleState, policy: ThrottlePolicy, now_us: int) -> ThrottleState:
    """The state as of now: a quiet period longer than `forget_s` wipes the slate."""
    if state.failures and now_us - state.last_us > policy.forget_s * _US:
        return ThrottleState()
    return state


def wait_s(state: ThrottleState, now_us: int) -> float:
    """How long a login attempt must still wait (0: it may try now)."""
    return max(0.0, (state.blocked_until_us - now_us) / _US)


def after_failure(state: ThrottleState, policy: ThrottlePolicy, now_us: int) -> ThrottleState:
    """The state after one more failed login at `now_us`."""
    failures = current(state, policy, now_us).failures + 1
    over = failures - policy.free_failures
    if over <= 0:
        return ThrottleState(failures, now_us, 0)
    # 2**over grows without bound; cap the exponent before it overflows a float.
    delay_s = min(policy.backoff_max_s, policy.backoff_s * 2 ** min(over - 1, 60))
    return ThrottleState(failures, now_us, now_us + int(delay_s * _US))
