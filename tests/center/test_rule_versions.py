"""Rule history, pure: snapshots keep every column, the diff names what differs, summaries."""

from __future__ import annotations

import pytest

from center.rule_versions import (
    BOOKKEEPING,
    FieldChange,
    change_rows,
    decode,
    diff,
    encode,
    rollback_values,
    snapshot,
    summarize,
)

BASE = {
    "id": 7,
    "name": "backup",
    "rule": "0 3 * * *",
    "execute": "/bin/b",
    "status": 1,
    "timeout_s": 0.0,
    "shell": 0,
    "depends_on": None,
    "update_time": 10,
    "error": "",
    "agents": [1, 2],
}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"execute": "/bin/c"}, [FieldChange("execute", "/bin/b", "/bin/c")]),
        ({"agents": [2]}, [FieldChange("agents", [1, 2], [2])]),
        ({"depends_on": 3}, [FieldChange("depends_on", None, 3)]),
        # bookkeeping never shows: the center's error, the times, the id
        ({"update_time": 99, "error": "bad", "notice": "n", "create_time": 5}, []),
        # a float column read back as 0 (JSON) is the same value; a bool is not a number
        ({"timeout_s": 0}, []),
        ({"shell": False}, [FieldChange("shell", 0, False)]),
        # a column added later: present in one version only
        ({"calendar": "cn-workdays"}, [FieldChange("calendar", None, "cn-workdays")]),
        (
            {"rule": "0 4 * * *", "name": "b2"},
            [FieldChange("name", "backup", "b2"), FieldChange("rule", "0 3 * * *", "0 4 * * *")],
        ),
    ],
)
def test_diff(changes, expected):
    """The diff lists, by name, each non-bookkeeping field whose value differs."""
    assert diff(BASE, BASE | changes) == expected


@pytest.mark.parametrize(
    ("old", "changes", "expected"),
    [
        (None, {}, "created"),
        (BASE, {}, "no change"),
        (BASE, {"status": 0}, "paused"),
        (BASE | {"status": 0}, {"status": 1}, "resumed"),
        (BASE, {"status": -1}, "deleted"),
        (BASE | {"status": -1}, {"status": 1}, "restored"),
        (BASE, {"execute": "x", "agents": []}, "changed agents, execute"),
        (BASE, {"status": 0, "execute": "x"}, "changed execute, status"),
        (BASE, {f"c{i}": i for i in range(8)}, "changed c0, c1, c2, c3, c4, c5 (+2 more)"),
    ],
)
def test_summarize(old, changes, expected):
    """The history's one line: created, paused, resumed, deleted, restored, or the fields."""
    assert summarize(old, BASE | changes) == expected


def test_snapshot_keeps_every_column_and_sorted_targets():
    """A version holds every column given (new ones too) and the target ids, sorted, once."""
    row = {"id": 1, "name": "n", "jitter_s": 30, "calendar": "weekdays", "f": 1.5, "z": None}
    snap = snapshot(row, [3, 1, 3])
    assert snap == row | {"agents": [1, 3]}
    assert decode(encode(snap)) == snap


def test_rollback_values_take_editable_fields_only():
    """A rollback writes back the fields an edit takes (and gid, agents), never bookkeeping."""
    content = BASE | {"gid": 2, "retired_field": 1}
    values = rollback_values(content, ["name", "rule", "execute", "status", "error", "absent"])
    assert values == {
        "agents": [1, 2],
        "execute": "/bin/b",
        "gid": 2,
        "name": "backup",
        "rule": "0 3 * * *",
        "status": 1,
    }
    assert not set(values) & BOOKKEEPING


def test_change_rows_are_json_rows():
    assert change_rows([FieldChange("a", 1, 2)]) == [{"field": "a", "old": 1, "new": 2}]
