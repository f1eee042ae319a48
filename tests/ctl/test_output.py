"""ctl's printing, pure: aligned tables, one-line cells, counts, durations, states."""

from __future__ import annotations

import json

import pytest

from ctl.errors import AuthRefused, Failed, NotFound, for_status
from ctl.output import agent_state, cell, counts, duration, facts, json_text, rule_state, table


def test_table_aligns_columns_to_the_widest_cell():
    """Every column starts at the same place on every line; no trailing spaces."""
    rows = [{"id": 1, "name": "backup"}, {"id": 1234, "name": "x"}]
    text = table(rows, [("ID", lambda r: r["id"]), ("NAME", lambda r: r["name"])])
    assert text.splitlines() == ["ID    NAME", "1     backup", "1234  x"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "—"),
        ("", "—"),
        (0, "0"),
        ("a\nb\tc", "a⏎b c"),
        ("x" * 60, "x" * 47 + "…"),
    ],
)
def test_cell(value, expected):
    """A cell is one line, at most 48 characters, and says — for nothing."""
    assert cell(value) == expected


@pytest.mark.parametrize(
    ("values", "order", "expected"),
    [
        ({}, (), "none"),
        ({"failed": 1, "success": 3, "killed": 2}, ("success",), "3 success, 1 failed, 2 killed"),
        ({"up": 0, "down": 2}, ("up", "down"), "0 up, 2 down"),
    ],
)
def test_counts(values, order, expected):
    assert counts(values, order) == expected


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 5, "—"),
        (10, 5, "—"),
        (1, 1_500_001, "1.5s"),
        (1, 61_000_001, "1m01s"),
        (1, 3_700_000_001, "1h01m"),
    ],
)
def test_duration(start, end, expected):
    assert duration(start, end) == expected


@pytest.mark.parametrize(
    ("row", "expected"),
    [({"status": 1}, "enabled"), ({"status": 0}, "paused"), ({"status": 1, "error": "x"}, "error")],
)
def test_rule_state(row, expected):
    assert rule_state(row) == expected


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"status": 0, "gid": None}, "pending"),
        ({"status": 0, "gid": 1}, "disabled"),
        ({"status": 1, "gid": 1}, "up"),
        ({"status": 2, "gid": 1}, "down"),
        ({"status": 1, "gid": 1, "drain": 1}, "draining"),
    ],
)
def test_agent_state(row, expected):
    assert agent_state(row) == expected


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthRefused),
        (403, AuthRefused),
        (429, AuthRefused),
        (404, NotFound),
        (409, Failed),
        (422, Failed),
        (500, Failed),
    ],
)
def test_http_statuses_become_exit_codes(status, error):
    """401/403/429 are auth refusals (4), 404 not found (3), any other refusal a failure (1)."""
    assert for_status(status) is error


def test_facts_and_json():
    assert facts([("a", 1), ("long", None)]) == "a     1\nlong  —"
    assert json.loads(json_text({"b": [1], "a": "é"})) == {"a": "é", "b": [1]}
