"""Retries and daemon wishes are pure decisions, checked with tables."""

from __future__ import annotations

import dataclasses

import pytest

from center.cronexpr import parse_schedule
from center.daemons import diff_daemons, wanted_daemons
from center.decisions import misfire_plan, plan_retry, retry_backoff_us
from center.routing import AgentInfo
from center.rules import Rule, run_spec
from protocol import statuses
from protocol.messages import RunRef

S = 1_000_000
RULE = Rule(
    id=5,
    rule="* * * * *",
    execute="/bin/false",
    run_user="nobody",
    retries=2,
    retry_backoff_s=10,
    agents=(1,),
)
REF = RunRef(runid="5-0-1-0-0", task_id=5, sched_us=0)


@pytest.mark.parametrize(
    ("status", "attempt", "rule_change", "retried"),
    [
        (statuses.FAILED, 0, {}, True),
        (statuses.TIMEOUT, 1, {}, True),
        (statuses.LOST, 0, {}, True),
        (statuses.FAILED, 2, {}, False),  # retries used up
        (statuses.SUCCESS, 0, {}, False),
        (statuses.KILLED, 0, {}, False),  # an operator's kill is not retried
        (statuses.SKIPPED, 0, {}, False),
        (statuses.FAILED, 0, {"status": 0}, False),  # paused since
        (statuses.FAILED, 0, {"retries": 0}, False),
        (statuses.FAILED, 0, {"is_daemon": True}, False),
    ],
)
def test_which_runs_are_retried(status, attempt, rule_change, retried):
    """Failed, timed-out and lost runs are retried while attempts remain and the rule is on."""
    ref = dataclasses.replace(REF, attempt=attempt)
    rule = dataclasses.replace(RULE, **rule_change)
    assert (plan_retry(ref, status, 1, rule, 100 * S) is not None) == retried


def test_retry_keeps_the_fire_links_the_first_and_waits_its_backoff():
    """A retry is the same fire, next attempt, linked to the first run, due after its backoff."""
    first = plan_retry(REF, statuses.FAILED, 1, RULE, 100 * S)
    assert first is not None
    assert (first.sched_us, first.attempt, first.trigger) == (0, 1, "retry")
    assert first.first_runid == REF.runid and first.runid == "5-0-1-1-0"
    assert first.due_us == 110 * S and first.send_at_us == 110 * S
    second = plan_retry(first.ref, statuses.FAILED, 1, RULE, 200 * S)
    assert second is not None and second.first_runid == REF.runid and second.due_us == 220 * S


def test_backoff_doubles_and_is_capped():
    """Backoff doubles per attempt and never exceeds a day."""
    assert [retry_backoff_us(RULE, a) // S for a in range(4)] == [10, 20, 40, 80]
    assert retry_backoff_us(RULE, 40) == 86_400 * S


def test_wanted_daemons_per_agent():
    """Enabled valid daemon rules go to their approved listed agents; others to nobody."""
    agents = {
        1: AgentInfo(id=1, name="a", ip="h", port=1, status=1),
        2: AgentInfo(id=2, name="b", ip="h", port=2, status=0),
    }
    daemon = dataclasses.replace(RULE, is_daemon=True, agents=(1, 2))
    paused = dataclasses.replace(daemon, id=6, status=0)
    broken = dataclasses.replace(daemon, id=7, error="rule: bad")
    wanted = wanted_daemons(
        {5: daemon, 6: paused, 7: broken, 8: dataclasses.replace(RULE, id=8)}, agents
    )
    assert wanted == {1: {5: run_spec(daemon)}}


def test_diff_sends_changes_and_stops_only():
    """Only new or changed specs are sent, and rules no longer wanted are stopped."""
    a, b = run_spec(RULE), run_spec(dataclasses.replace(RULE, id=6))
    b2 = run_spec(dataclasses.replace(RULE, id=6, execute="/bin/true"))
    change = diff_daemons({5: a, 6: b}, {6: b2, 7: a})
    assert change.specs == [b2, a] and change.stopped == [5]
    assert not diff_daemons({5: a}, {5: a})


T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("policy", "window_s", "gap_s", "run", "missed", "more"),
    [
        ("skip", 3600, 5, [], [1, 2, 3, 4, 5], False),
        ("once", 3600, 5, [5], [1, 2, 3, 4], False),
        ("all", 3600, 5, [1, 2, 3, 4, 5], [], False),
        ("all", 3, 5, [2, 3, 4, 5], [], False),  # none older than the window is looked at
        ("skip", 3600, 0, [], [], False),  # no gap, nothing missed
        ("once", 3600, 250, [250], list(range(1, 101)), True),  # capped; the newest still runs
        ("skip", 3600, 250, [], list(range(1, 101)), True),
    ],
)
def test_misfire_policies(policy, window_s, gap_s, run, missed, more):
    """After a gap with no leader, each misfire policy runs or records the fires it should."""
    every_second = parse_schedule("* * * * * *")
    plan = misfire_plan(every_second, policy, window_s, gap_from_us=T0, now_us=T0 + gap_s * S)
    assert [(f - T0) // S for f in plan.run] == run
    assert [(f - T0) // S for f in plan.missed] == missed
    assert plan.more is more


def test_misfire_once_finds_the_newest_fire_of_a_sparse_rule_quickly():
    """`once` after a long gap runs the latest fire, even when only the oldest were listed."""
    hourly = parse_schedule("@hourly")
    plan = misfire_plan(
        hourly, "once", 86_400 * 30, gap_from_us=T0, now_us=T0 + 500 * 3600 * S, cap=10
    )
    assert plan.run == (T0 + 500 * 3600 * S,) and plan.more
