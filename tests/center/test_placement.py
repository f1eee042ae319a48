"""Placement of fleet services, table-driven: joins, losses, caps, ties, labels, strategies."""

from __future__ import annotations

import pytest

from center.placement import Host, Slot, by_agent, keeps, place_service, spread_move
from center.routing import AgentInfo
from center.rules import Rule

NOW = 1_800_000_000_000_000


def _agents(*specs: tuple[int, dict[str, str]] | int, gid: int = 1) -> dict[int, AgentInfo]:
    out = {}
    for spec in specs:
        aid, labels = spec if isinstance(spec, tuple) else (spec, {})
        out[aid] = AgentInfo(
            id=aid, name=f"a{aid}", ip="", port=0, status=1, gid=gid, labels=labels
        )
    return out


def _rule(**values: object) -> Rule:
    base: dict[str, object] = {
        "id": 7,
        "gid": 1,
        "rule": "",
        "execute": "x",
        "is_daemon": True,
        "routing": "least_loaded",
        "process_num": 4,
    }
    return Rule(**(base | values))  # type: ignore[arg-type]


def _hosts(*aids: int, **why_not: str) -> dict[int, Host]:
    return {aid: Host(aid, 0.0, why_not.get(f"a{aid}", "")) for aid in aids}


def _place(rule: Rule, current: list[tuple[int, int]], hosts: dict[int, Host], agents, counts=None):
    slots = {i: Slot(i, aid, "", 1) for i, aid in current}
    placed = place_service(
        rule,
        slots,
        hosts,
        agents,
        counts if counts is not None else {},
        now_us=NOW,
        offline_after_s=2.0,
    )
    return [s.aid for s in placed], placed


@pytest.mark.parametrize(
    ("case", "rule", "current", "hosts", "expected"),
    [
        ("spread over three", _rule(), [], _hosts(1, 2, 3), [1, 2, 3, 1]),
        ("cap of two", _rule(max_per_agent=2), [], _hosts(1, 2), [1, 2, 1, 2]),
        (
            "a join moves nothing",
            _rule(),
            [(0, 1), (1, 1), (2, 2), (3, 2)],
            _hosts(1, 2, 3),
            [1, 1, 2, 2],
        ),
        ("a loss re-places", _rule(), [(0, 1), (1, 2), (2, 3), (3, 1)], _hosts(1, 2), [1, 2, 2, 1]),
        (
            "draining keeps, takes none",
            _rule(),
            [(0, 3)],
            _hosts(1, 2, 3, a3="draining"),
            [3, 1, 2, 1],
        ),
        ("refusing takes none", _rule(), [], _hosts(1, 2, a2="load too high"), [1, 1, 1, 1]),
        (
            "lowered cap moves extras",
            _rule(max_per_agent=1),
            [(0, 1), (1, 1)],
            _hosts(1, 2, 3),
            [1, 2, 3, 0],
        ),
        (
            "fewer instances",
            _rule(process_num=2),
            [(0, 1), (1, 2), (2, 3)],
            _hosts(1, 2, 3),
            [1, 2],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_place_service(case: str, rule: Rule, current, hosts, expected: list[int]) -> None:
    aids, _ = _place(rule, current, hosts, _agents(1, 2, 3))
    assert aids == expected, case


def test_unplaced_instances_say_why() -> None:
    rule = _rule(max_per_agent=1)
    _, slots = _place(rule, [], _hosts(1, 2), _agents(1, 2))
    assert [s.aid for s in slots] == [1, 2, 0, 0]
    assert "max_per_agent 1 × 2 agents" in slots[2].reason
    _, none = _place(rule, [], _hosts(1, a1="offline"), _agents(1))
    assert none[0].aid == 0 and "a1: offline" in none[0].reason
    _, nobody = _place(_rule(selector="zone=b"), [], _hosts(1), _agents((1, {"zone": "a"})))
    assert nobody[0].aid == 0 and nobody[0].reason.startswith("no eligible agent")


def test_labels_and_listed_agents_choose_the_pool() -> None:
    agents = _agents((1, {"zone": "a"}), (2, {"zone": "b"}), (3, {"zone": "b"}))
    aids, _ = _place(_rule(selector="zone=b"), [], _hosts(1, 2, 3), agents)
    assert set(aids) == {2, 3}
    aids, _ = _place(_rule(agents=(1,)), [], _hosts(1, 2, 3), agents)
    assert aids == [1, 1, 1, 1]


def test_least_loaded_counts_what_was_just_placed() -> None:
    """Two services placed in one pass share the counts: the second avoids the first's agents."""
    counts: dict[int, int] = {}
    first, _ = _place(
        _rule(id=1, process_num=2), [], _hosts(1, 2, 3, 4), _agents(1, 2, 3, 4), counts
    )
    second, _ = _place(
        _rule(id=2, process_num=2), [], _hosts(1, 2, 3, 4), _agents(1, 2, 3, 4), counts
    )
    assert first == [1, 2] and second == [3, 4] and counts == {1: 1, 2: 1, 3: 1, 4: 1}


def test_hash_keeps_instances_where_they_were_when_agents_come_and_go() -> None:
    rule = _rule(routing="hash", process_num=6)
    three, _ = _place(rule, [], _hosts(1, 2, 3), _agents(1, 2, 3))
    again, _ = _place(rule, [], _hosts(1, 2, 3), _agents(1, 2, 3))
    assert three == again
    four, _ = _place(rule, [], _hosts(1, 2, 3, 4), _agents(1, 2, 3, 4))
    assert sum(a != b for a, b in zip(three, four, strict=True)) <= 3


def test_round_robin_turns() -> None:
    aids, _ = _place(
        _rule(routing="round_robin", process_num=3), [], _hosts(1, 2, 3), _agents(1, 2, 3)
    )
    assert sorted(aids) == [1, 2, 3]


@pytest.mark.parametrize(
    ("down_s", "partition_stop_s", "kept"),
    [
        (0.0, 0, True),
        (1.9, 0, True),
        (2.1, 0, False),
        (2.1, 30, True),
        (36.9, 30, True),
        (37.1, 30, False),
    ],  # 30 s + a kill grace of 5 s + the 2 s margin
)
def test_an_agent_keeps_its_instances_within_the_bound(
    down_s: float, partition_stop_s: int, kept: bool
) -> None:
    rule = _rule(partition_stop_s=partition_stop_s)
    assert keeps(rule, Host(1, down_s), offline_after_s=2.0) is kept
    assert keeps(rule, None, offline_after_s=2.0) is False


@pytest.mark.parametrize(
    ("placed", "hosts", "move"),
    [
        ([1, 1, 1, 2], (1, 2, 3), (2, 3)),
        ([1, 1, 2, 2], (1, 2), None),
        ([1, 1, 2, 3], (1, 2, 3), None),
        ([1, 1, 1, 1], (1, 2), (3, 2)),
    ],
)
def test_spread_move_one_step(placed: list[int], hosts: tuple[int, ...], move) -> None:
    slots = [Slot(i, aid) for i, aid in enumerate(placed)]
    assert spread_move(_rule(), slots, _hosts(*hosts)) == move


def test_by_agent() -> None:
    slots = {7: [Slot(0, 1), Slot(1, 2), Slot(2, 0)], 8: [Slot(0, 1)]}
    assert by_agent(slots) == {1: {7: [0], 8: [0]}, 2: {7: [1]}}
