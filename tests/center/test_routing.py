"""Routing strategies pick agents from what the center knows; failover skips offline ones."""

from __future__ import annotations

import dataclasses

import pytest

from center.errors import RuleError
from center.routing import (
    AGENT_ENABLED,
    AGENT_PENDING,
    AGENT_UNREACHABLE,
    AgentInfo,
    candidates,
    choose,
    failover_target,
    planning_notice,
    reachability_changes,
)
from center.rules import Rule, validate_rule

AGENTS = {
    1: AgentInfo(
        id=1,
        name="a",
        ip="h",
        port=1,
        status=1,
        gid=7,
        labels={"zone": "x"},
        cpu_pct=90,
        mem_pct=50,
        load1=2.0,
    ),
    2: AgentInfo(
        id=2,
        name="b",
        ip="h",
        port=2,
        status=1,
        gid=7,
        labels={"zone": "y"},
        cpu_pct=10,
        mem_pct=20,
        load1=0.1,
    ),
    3: AgentInfo(
        id=3,
        name="c",
        ip="h",
        port=3,
        status=2,
        gid=7,
        labels={"zone": "x", "v": "2"},
        cpu_pct=40,
        mem_pct=40,
        load1=0.5,
    ),
    4: AgentInfo(id=4, name="d", ip="h", port=4, status=0, gid=7),  # pending: never chosen
    5: AgentInfo(id=5, name="e", ip="h", port=5, status=1, gid=8),  # another group
}
RULE = Rule(id=11, gid=7, rule="* * * * *", execute="/bin/true", routing="least_loaded")
ALL_ONLINE = lambda aid: True  # noqa: E731


def test_candidates_are_the_group_or_the_listed_agents_filtered_by_labels():
    """A strategy picks from the group (or the listed agents), approved, matching the labels."""
    assert candidates(RULE, AGENTS) == [1, 2, 3]
    assert candidates(dataclasses.replace(RULE, agents=(2, 4, 5)), AGENTS) == [2, 5]
    assert candidates(dataclasses.replace(RULE, selector="zone=x"), AGENTS) == [1, 3]
    assert candidates(dataclasses.replace(RULE, selector="zone=x, v=2"), AGENTS) == [3]


@pytest.mark.parametrize(
    ("routing", "online", "expected"),
    [
        ("least_loaded", {1, 2, 3}, [2]),
        ("least_loaded", {1, 3}, [3]),  # failover to the next best
        ("listed", {1, 2, 3}, [1, 3]),  # broadcast to the listed approved agents
    ],
)
def test_choose(routing, online, expected):
    """Each strategy's first choice, and failover when it is offline."""
    listed = (1, 3, 4) if routing == "listed" else ()
    rule = dataclasses.replace(RULE, routing=routing, agents=listed)
    assert [aid for _, aid in choose(rule, AGENTS, online.__contains__)] == expected


def test_round_robin_turns_and_hash_is_stable():
    """Round robin moves on each turn; hash keeps a rule on one agent when others leave."""
    rr = dataclasses.replace(RULE, routing="round_robin")
    assert [choose(rr, AGENTS, ALL_ONLINE, turn)[0][1] for turn in range(4)] == [1, 2, 3, 1]
    hashed = dataclasses.replace(RULE, routing="hash")
    first = choose(hashed, AGENTS, ALL_ONLINE)[0][1]
    others = {aid: a for aid, a in AGENTS.items() if aid == first or aid in (1, 2, 3)}
    assert choose(hashed, others, ALL_ONLINE)[0][1] == first
    fewer = {aid: a for aid, a in AGENTS.items() if aid == first}
    assert choose(hashed, fewer, ALL_ONLINE)[0][1] == first


def test_sharding_spreads_shards_over_agents():
    """shard_total=N makes N runs, each with its shard index, spread over the candidates."""
    sharded = dataclasses.replace(RULE, routing="round_robin", shard_total=3)
    assert choose(sharded, AGENTS, ALL_ONLINE) == [(0, 1), (1, 2), (2, 3)]
    one_up = choose(sharded, AGENTS, lambda aid: aid == 2)
    assert one_up == [(0, 2), (1, 2), (2, 2)]


def test_without_failover_the_first_choice_stands():
    """failover=0 keeps the first choice even when it is offline, and offers no alternative."""
    rule = dataclasses.replace(RULE, failover=False)
    assert choose(rule, AGENTS, lambda aid: aid != 2) == [(0, 2)]
    assert failover_target(rule, 0, 2, AGENTS, lambda aid: True) is None
    assert failover_target(RULE, 0, 2, AGENTS, lambda aid: aid == 1) == 1


def test_bad_selector_is_a_rule_error():
    """A selector item without `=` is named as a selector error."""
    with pytest.raises(RuleError) as info:
        validate_rule(dataclasses.replace(RULE, selector="zone"))
    assert info.value.field == "selector"


@pytest.mark.parametrize(
    ("allowed", "allow_root", "run_user", "permitted"),
    [
        ((), False, "nobody", True),  # no list: any user but root
        ((), False, "root", False),
        ((), True, "root", True),
        (("nobody",), False, "nobody", True),
        (("nobody",), False, "daemon", False),
        (("nobody",), True, "root", True),  # root is allowed by its own switch
        ((), False, "", True),  # empty: the agent decides (its own user)
    ],
)
def test_agent_policy_permits(allowed, allow_root, run_user, permitted):
    """An agent's run_user policy: an allowlist, and root only when explicitly allowed."""
    agent = AgentInfo(
        id=1, name="a", ip="h", port=1, status=1, allowed_users=allowed, allow_root=allow_root
    )
    assert agent.permits(run_user) is permitted


def test_refused_agents_are_not_targets_and_are_named_in_the_notice():
    """Listed agents whose policy refuses the rule's user get no runs; the notice names them."""
    agents = {
        1: AgentInfo(id=1, name="web-1", ip="h", port=1, status=1, allowed_users=("nobody",)),
        2: AgentInfo(id=2, name="web-2", ip="h", port=2, status=1),
    }
    rule = dataclasses.replace(RULE, routing="listed", agents=(1, 2), run_user="daemon")
    assert choose(rule, agents, ALL_ONLINE) == [(0, 2)]
    assert "web-1" in planning_notice(rule, agents, 1) and "daemon" in planning_notice(
        rule, agents, 1
    )
    root = dataclasses.replace(rule, run_user="root")
    assert choose(root, agents, ALL_ONLINE) == []
    assert "web-1, web-2" in planning_notice(root, agents, 0)


def _agent_in(status: int) -> AgentInfo:
    return AgentInfo(id=1, name="a", ip="127.0.0.1", port=1, status=status)


@pytest.mark.parametrize(
    ("status", "connected", "down_for_s", "expected"),
    [
        (AGENT_ENABLED, True, 0.0, None),
        (AGENT_ENABLED, False, 1.0, None),  # not down long enough yet
        (AGENT_ENABLED, False, 2.5, (AGENT_ENABLED, AGENT_UNREACHABLE)),
        (AGENT_UNREACHABLE, True, 0.0, (AGENT_UNREACHABLE, AGENT_ENABLED)),
        (AGENT_UNREACHABLE, False, 9.0, None),  # already marked
        (AGENT_PENDING, False, 9.0, None),  # never approved: nothing to mark
        (None, False, 9.0, None),  # deleted meanwhile
    ],
)
def test_reachability_changes(status, connected, down_for_s, expected):
    """A link down past the offline delay marks its agent unreachable; a link back enables it."""
    agents = {} if status is None else {1: _agent_in(status)}
    got = reachability_changes(
        {1: (connected, 100.0 - down_for_s)}, agents, now_mono=100.0, offline_after_s=2.0
    )
    assert [(c.from_status, c.to_status) for c in got] == ([expected] if expected else [])
