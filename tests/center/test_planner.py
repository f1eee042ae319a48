"""Planner: a heap of next fires, given `now` — never a scan, never a fire twice."""

from __future__ import annotations

import pytest

from center.cronexpr import parse_schedule
from center.planner import Fire, Planner, pack_entry, unpack_entry

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs
S = 1_000_000


def test_due_returns_fires_in_time_order_and_advances_each_rule():
    """Two rules due in a window come out in time order, each moved to its following fire."""
    p = Planner()
    p.set_rule(1, parse_schedule("*/2 * * * * *"), T0)
    p.set_rule(2, parse_schedule("*/3 * * * * *"), T0)
    fires = p.due(T0 + 6 * S)
    assert fires == [
        Fire(1, T0 + 2 * S),
        Fire(2, T0 + 3 * S),
        Fire(1, T0 + 4 * S),
        Fire(1, T0 + 6 * S),
        Fire(2, T0 + 6 * S),
    ]
    assert p.due(T0 + 6 * S) == []
    assert p.next_fire_us() == T0 + 8 * S


@pytest.mark.parametrize(
    ("after_us", "until_us", "expected"),
    [
        (T0, T0, []),  # strictly after `after`: T0 itself is not due
        (T0 - 1, T0, [T0]),  # one µs before a fire: it is due at the fire
        (T0, T0 + S - 1, []),  # not yet
        (T0, T0 + S, [T0 + S]),  # exactly at its time
        (T0 + S // 2, T0 + 3 * S, [T0 + S, T0 + 2 * S, T0 + 3 * S]),
    ],
)
def test_due_window_edges(after_us, until_us, expected):
    """A fire is due when its time is at or before `until`, and only after the `after` point."""
    p = Planner()
    p.set_rule(7, parse_schedule("* * * * * *"), after_us)
    assert [f.sched_us for f in p.due(until_us)] == expected


def test_remove_and_replan_drop_stale_heap_entries():
    """A removed rule never fires; a re-planned rule fires on its new schedule only."""
    p = Planner()
    p.set_rule(1, parse_schedule("* * * * * *"), T0)
    p.set_rule(2, parse_schedule("* * * * * *"), T0)
    p.remove(1)
    p.set_rule(2, parse_schedule("*/5 * * * * *"), T0)
    assert p.due(T0 + 10 * S) == [Fire(2, T0 + 5 * S), Fire(2, T0 + 10 * S)]
    assert len(p) == 1


def test_one_off_rule_leaves_the_planner_after_firing():
    """An @at rule fires once and is then forgotten."""
    p = Planner()
    p.set_rule(3, parse_schedule("@at 2026-01-01T00:00:05Z"), T0)
    assert p.due(T0 + 60 * S) == [Fire(3, T0 + 5 * S)]
    assert len(p) == 0
    assert p.next_fire_us() is None


def test_many_edits_do_not_grow_the_heap_without_bound():
    """Re-planning a rule thousands of times keeps the heap compact."""
    p = Planner()
    sched = parse_schedule("0 0 1 1 *")
    for _ in range(10_000):
        p.set_rule(1, sched, T0)
        p.due(T0)
    assert len(p._heap) < 3000


def test_limit_bounds_one_call():
    """`limit` caps how many fires one call returns; the rest stay due."""
    p = Planner()
    for task_id in range(10):
        p.set_rule(task_id, parse_schedule("* * * * * *"), T0)
    assert len(p.due(T0 + S, limit=4)) == 4
    assert len(p.due(T0 + S)) == 6


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((T0, 5, 1), (T0 + 1, 1, 1)),  # the fire time first
        ((T0, 1, 9), (T0, 2, 1)),  # then the rule
        ((T0, 2, 1), (T0, 2, 2)),  # then the generation
        ((T0, 2**32 - 1, 2**40 - 1), (T0 + 1, 0, 0)),  # the widest id and generation
        ((0, 0, 0), (0, 0, 1)),
    ],
)
def test_heap_entries_order_as_their_fields_do(a: tuple[int, int, int], b: tuple[int, int, int]):
    assert pack_entry(*a) < pack_entry(*b)
    assert (unpack_entry(pack_entry(*a)), unpack_entry(pack_entry(*b))) == (a, b)


@pytest.mark.parametrize("task_id", [-1, 2**32])
def test_a_task_id_out_of_range_is_refused(task_id: int):
    with pytest.raises(ValueError, match="task_id"):
        Planner().set_rule(task_id, parse_schedule("* * * * * *"), T0)
    with pytest.raises(ValueError, match="task_id"):
        Planner().load([(task_id, parse_schedule("* * * * * *"))], T0)
