"""The fleet-wide cap of one-shot strategy rules: the pure admission, and the count kept."""

from __future__ import annotations

import pytest

from center.fleet_cap import GO, WAIT, FleetCap, admit, fleet_capped
from center.rules import Rule

S = 1_000_000


def _rule(**values: object) -> Rule:
    base: dict[str, object] = {"id": 5, "rule": "* * * * * *", "execute": "x"}
    return Rule(**(base | {"routing": "round_robin", "process_num": 2} | values))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overlap", "running", "verdict", "replace"),
    [
        ("skip", ["a"], GO, ""),
        (
            "skip",
            ["a", "b"],
            "2 runs of rule 5 already running across the fleet (process_num=2)",
            "",
        ),
        ("queue", ["a", "b"], WAIT, ""),
        ("replace", ["a", "b"], GO, "a"),
        ("parallel", ["a", "b", "c"], GO, ""),
    ],
)
def test_admit(overlap: str, running: list[str], verdict: str, replace: str) -> None:
    decision = admit(_rule(overlap=overlap), running)
    assert (decision.verdict, decision.replace) == (verdict, replace)


@pytest.mark.parametrize(
    ("values", "capped"),
    [
        ({}, True),
        ({"routing": "listed"}, False),
        ({"is_daemon": True, "rule": ""}, False),
    ],
)
def test_which_rules_are_capped_across_the_fleet(values: dict[str, object], capped: bool) -> None:
    assert fleet_capped(_rule(**values)) is capped
    assert fleet_capped(None) is False


def test_counts_until_ended_and_forgets_runs_whose_end_was_lost() -> None:
    cap, rule, key = FleetCap(forget_after_s=100), _rule(), (5, 0)
    cap.sent(key, "r1", 7, 0)
    cap.sent(key, "r2", 8, 10 * S)
    cap.sent((5, 1), "shard-1", 9, 10 * S)  # another shard: its own cap
    assert cap.running(rule, key, 20 * S) == ["r1", "r2"] and cap.agent_of(key, "r2") == 8
    cap.ended(key, "r1")
    assert cap.running(rule, key, 20 * S) == ["r2"]
    assert cap.running(rule, (5, 1), 20 * S) == ["shard-1"]
    assert cap.running(rule, key, 111 * S) == [], "no end within the lost bound: forgotten"
    timed = _rule(timeout_s=5, kill_grace_s=1)
    cap.sent(key, "r3", 7, 0)
    assert cap.running(timed, key, 65 * S) == ["r3"] and cap.running(timed, key, 67 * S) == []
