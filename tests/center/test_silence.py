"""Runs in flight on agents silent past the bound are lost, and retried as their rules say."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from center.rules import Rule
from center.runs import plan_run
from center.silence import InFlight, lose_silent, silence_reason
from protocol import statuses

S = 1_000_000
BOUND = 3600 * S
NOW = 100_000 * S
RULE = Rule(
    id=5,
    rule="* * * * *",
    execute="/bin/true",
    run_user="nobody",
    retries=1,
    retry_backoff_s=0,
    retry_unknown="retry",
    agents=(3,),
)
NAMES = {3: "web-3", 4: "web-4"}


def _row(**change: Any) -> InFlight:
    run = plan_run(5, NOW - 2 * BOUND, change.pop("aid", 3), attempt=change.pop("attempt", 0))
    row = InFlight(run, statuses.RUNNING, updated_us=NOW - BOUND, heard_us=NOW - BOUND)
    return dataclasses.replace(row, **change)


@pytest.mark.parametrize(
    ("row", "online", "rule_change", "lost", "retried"),
    [
        (_row(), set(), {}, True, True),
        (_row(status=statuses.DISPATCHED), set(), {}, True, True),
        (_row(), {3}, {}, False, False),  # connected: it reconciles instead
        (_row(heard_us=NOW - BOUND + 1), set(), {}, False, False),  # heard within the bound
        (_row(updated_us=NOW - BOUND + 1), set(), {}, False, False),  # touched within it
        (_row(heard_us=0), set(), {}, True, True),  # an agent whose row is gone
        (_row(aid=4), {3}, {}, True, True),  # another agent being up does not matter
        (_row(status=statuses.PLANNED), set(), {}, False, False),  # never sent: the grace's
        (_row(status=statuses.SUCCESS), set(), {}, False, False),
        (_row(), set(), {"retry_unknown": "never"}, True, False),  # at most once
        (_row(attempt=1), set(), {}, True, False),  # its retries used up
        (_row(), set(), {"retries": 0}, True, False),
        (_row(), set(), {"status": 0}, True, False),  # paused since
    ],
)
def test_which_runs_are_lost_and_retried(row, online, rule_change, lost, retried):
    """Lost: in flight, agent not connected, silent (no heartbeat, no row change) for the
    bound; retried only as the rule's retries and retry_unknown allow."""
    rules = {5: dataclasses.replace(RULE, **rule_change)}
    out = lose_silent(
        [row],
        connected=online.__contains__,
        names=NAMES.__getitem__,
        rules=rules,
        now_us=NOW,
        bound_us=BOUND,
    )
    assert bool(out) == lost
    assert bool(out and out[0].retry) == retried


def test_the_lost_run_names_agent_and_bound_and_its_retry_is_the_next_attempt():
    """The reason names the agent and the bound; the retry is attempt 1 of the same fire, on
    the same agent (the dispatcher moves it if the rule fails over), due now."""
    (out,) = lose_silent(
        [_row()],
        connected=lambda aid: False,
        names=NAMES.__getitem__,
        rules={5: RULE},
        now_us=NOW,
        bound_us=BOUND,
    )
    assert out.reason == "agent web-3 silent for 3600 s" and out.agent == "web-3"
    assert out.retry is not None
    assert (out.retry.attempt, out.retry.trigger, out.retry.aid) == (1, "retry", 3)
    assert out.retry.first_runid == out.run.runid and out.retry.send_at_us == NOW


@pytest.mark.parametrize(
    ("bound_us", "text"), [(3600 * S, "3600"), (S, "1"), (S // 2, "0.5"), (90 * S, "90")]
)
def test_reason_shows_the_bound_in_seconds(bound_us, text):
    """Whole seconds without a decimal point, fractions as they are."""
    assert silence_reason("a", bound_us) == f"agent a silent for {text} s"
