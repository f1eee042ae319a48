"""DispatchMarks: a sent run's `dispatched` is due MARK_AFTER_US past the later of its send and
its time, is taken with its send time, stays held until written, and a stored report
(forget) drops it."""

from __future__ import annotations

import pytest

from center.dispatch_marks import DispatchMarks

S = 1_000_000
T = 1_000 * S


def _marks(*runs: tuple[str, int], now_us: int = T) -> DispatchMarks:
    marks = DispatchMarks(after_us=2 * S)
    marks.add(runs, now_us)
    return marks


@pytest.mark.parametrize(
    ("runs", "now_us", "due"),
    [
        ([("ahead", T + 2 * S)], T + 3 * S, []),  # sent 2 s ahead: due 2 s after its time
        ([("ahead", T + 2 * S)], T + 4 * S, ["ahead"]),
        ([("late", T - 60 * S)], T + S, []),  # sent late (a manual run): 2 s after the send
        ([("late", T - 60 * S)], T + 2 * S, ["late"]),
        ([("b", T + S), ("a", T)], T + 3 * S, ["a", "b"]),  # in the order they fall due
        ([], T + 60 * S, []),
    ],
)
def test_a_mark_falls_due_after_the_later_of_send_and_time(
    runs: list[tuple[str, int]], now_us: int, due: list[str]
):
    assert _marks(*runs).take_due(now_us) == ({T: due} if due else {})


def test_marks_are_taken_by_when_they_were_sent():
    """Each group is written with its send time as the rows' `updated_us` (the sweep counts
    a run's silence from it)."""
    marks = _marks(("a", T))
    marks.add([("b", T)], T + S)
    assert marks.take_due(T + 9 * S) == {T: ["a"], T + S: ["b"]}
    assert marks.sent_before("a", T + S) and not marks.sent_before("b", T + S)
    assert not marks.sent_before("unknown", T + 9 * S)


def test_a_taken_mark_is_still_held_until_forgotten():
    """Its write is in flight: the run still counts as sent (a kill must reach its agent)."""
    marks = _marks(("r", T))
    assert marks.take_due(T + 2 * S) == {T: ["r"]}
    assert "r" in marks and marks.take_due(T + 9 * S) == {} and marks.next_us() is None
    marks.forget(["r"])
    assert "r" not in marks and len(marks) == 0


def test_a_reported_run_is_never_due():
    marks = _marks(("r", T), ("s", T + S))
    marks.forget(["r", "unknown"])
    assert marks.next_us() == T + 3 * S
    assert marks.take_due(T + 60 * S) == {T: ["s"]}


def test_a_run_sent_again_is_due_after_its_latest_send():
    marks = _marks(("r", T))
    marks.add([("r", T)], T + 5 * S)  # resent after a reconnection
    assert marks.next_us() == T + 7 * S
    assert marks.take_due(T + 6 * S) == {}
    assert marks.take_due(T + 7 * S) == {T + 5 * S: ["r"]}


def test_take_all_takes_every_run_held_due_or_not():
    marks = _marks(("a", T), ("b", T + 60 * S))
    assert marks.take_all() == {T: ["a", "b"]}
    assert marks.next_us() is None and len(marks) == 2
