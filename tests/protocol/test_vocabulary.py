"""The vocabulary's values are the stored and wire values: they never change."""

from __future__ import annotations

import pytest

from protocol import statuses
from protocol.vocabulary import (
    AgentStatus,
    CommandKind,
    DependsWhen,
    FlowJoin,
    FlowStatus,
    Misfire,
    Overlap,
    RetryUnknown,
    Routing,
    RuleStatus,
    RunStatus,
    Trigger,
)


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        (Trigger, ["schedule", "manual", "retry", "misfire", "dependency", "daemon", "flow"]),
        (Overlap, ["skip", "queue", "replace", "parallel"]),
        (Misfire, ["skip", "once", "all"]),
        (Routing, ["listed", "least_loaded", "round_robin", "hash"]),
        (DependsWhen, ["success", "failure", "always"]),
        (RetryUnknown, ["never", "retry"]),
        (CommandKind, ["run", "kill", "kill_rule", "rebalance", "flow_run", "flow_rerun"]),
        (FlowJoin, ["all", "any"]),
        (FlowStatus, ["running", "success", "failed", "skipped", "queued"]),
        (RuleStatus, [-1, 0, 1]),
        (AgentStatus, [-1, 0, 1, 2]),
    ],
)
def test_stored_values(enum, values):
    """Each enum holds exactly the values the database and the wire use."""
    assert [member.value for member in enum] == values
    assert all(member == value for member, value in zip(enum, values, strict=True))


def test_run_statuses_are_the_vocabularys():
    """protocol.statuses names the same values, and its sets partition them."""
    assert frozenset(RunStatus) == statuses.ALL
    assert statuses.ACTIVE.isdisjoint(statuses.FINAL)
    assert statuses.LOST == "lost" and isinstance(statuses.LOST, str)
