"""calendar_ending's pure decision: a calendar's end against `now`, the fallback's words, who is
concerned, and the recovery once the data is extended."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from center.alerts.calendar_ending import (
    RULE,
    WORKFLOW,
    CalendarUser,
    calendar_findings,
    ending_calendars,
)
from center.alerts.model import CALENDAR_ENDING, RECOVERY, AlertState, Channel, evaluate
from center.calendars import (
    BUILTINS,
    CN_WORKDAYS,
    WEEKDAYS,
    Calendar,
    builtin,
    group_calendar,
)

S = 1_000_000
GID = 7
# The installed chinesecalendar's end: the tests move `now` around it, whatever version it is.
CN = builtin(CN_WORKDAYS)
assert CN is not None and CN.last is not None
LAST = CN.last
END = date.fromordinal(LAST).isoformat()


def at(days_before_end: int) -> int:
    """Noon UTC, that many days before the built-in's last date (negative: after it)."""
    day = date.fromordinal(LAST) - timedelta(days=days_before_end)
    return int(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()) * S


def user(**values: object) -> CalendarUser:
    base: dict[str, object] = {
        "kind": RULE,
        "id": 12,
        "name": "payroll",
        "gid": GID,
        "calendar": CN_WORKDAYS,
        "fallback": "skip",
        "expr": "0 9 * * *",
        "timezone": "Asia/Shanghai",
    }
    return CalendarUser(**(base | values))  # type: ignore[arg-type]


OPS = {(GID, "ops-days"): group_calendar("ops-days", CN_WORKDAYS, "", "2026-12-24")}
PLAIN = {(GID, "own"): group_calendar("own", "", "2026-12-24", "")}
# The same built-in name with a year more of data, as a newer chinesecalendar would give it.
EXTENDED = {(GID, CN_WORKDAYS): Calendar(CN_WORKDAYS, CN.weekdays, last=LAST + 365)}
RULE_SKIP = f"rule payroll (12): calendar cn-workdays has no data after {END}: its fires after "
RULE_SKIP += "that do not run (calendar_fallback)"


@pytest.mark.parametrize(
    ("days", "who", "groups", "summary"),
    [
        (31, user(), {}, None),  # a month and a day ahead: not yet
        (30, user(), {}, RULE_SKIP),
        (0, user(), {}, RULE_SKIP),  # the last day itself
        (-3, user(), {}, RULE_SKIP),  # already ended: fires are being skipped now
        (
            10,
            user(fallback="weekdays"),
            {},
            RULE_SKIP.replace("do not run", "run by the day of the week"),
        ),
        (10, user(enabled=False), {}, None),  # paused
        (10, user(calendar=""), {}, None),  # uses no calendar
        (10, user(calendar=WEEKDAYS), {}, None),  # has no end
        (10, user(calendar="ops-days"), OPS, RULE_SKIP.replace("cn-workdays", "ops-days")),
        (10, user(calendar="own"), PLAIN, None),  # a group's own without a base: no end
        (10, user(calendar="ops-days", gid=8), OPS, None),  # another group's: unknown to it
        (10, user(), EXTENDED, None),  # the data was extended
        (10, user(expr=f"@at {date.fromordinal(LAST - 2).isoformat()}T09:00"), {}, None),
        (10, user(expr=f"@at {date.fromordinal(LAST + 1).isoformat()}T01:00+08:00"), {}, RULE_SKIP),
        (
            10,
            user(kind=WORKFLOW, name="close", id=3),
            {},
            RULE_SKIP.replace("rule payroll (12)", "workflow close (3)"),
        ),
    ],
)
def test_who_is_told(
    days: int, who: CalendarUser, groups: dict[tuple[int, str], Calendar], summary: str | None
):
    found = calendar_findings([who], groups, at(days))
    if summary is None:
        assert found == []
        return
    [finding] = found
    assert (finding.event, finding.gid, finding.summary) == (CALENDAR_ENDING, who.gid, summary)
    assert finding.subject == f"{who.kind}:{who.id}" and not finding.cleared
    assert finding.detail[who.kind] == {"id": who.id, "name": who.name}
    assert finding.detail["calendar"] == {
        "name": who.calendar,
        "last": END,
        "fallback": who.fallback,
    }


@pytest.mark.parametrize(
    ("days", "groups", "names"),
    [
        (31, OPS | PLAIN, set()),
        (30, OPS | PLAIN, {"cn-workdays", "cn-holidays", "ops-days"}),
        (-400, {}, {"cn-workdays", "cn-holidays"}),
    ],
)
def test_each_calendar_is_judged_once(
    days: int, groups: dict[tuple[int, str], Calendar], names: set[str]
):
    builtins = [c for c in map(builtin, BUILTINS) if c is not None]
    assert ending_calendars(groups, builtins, at(days)) == names


def test_extended_data_recovers_the_open_condition():
    """An alert was sent; the next check finds nothing (newer data): the channel is told."""
    channel = Channel(1, GID, "c", "webhook", "http://x/", "s", frozenset({CALENDAR_ENDING}))
    now = at(10)
    [finding] = calendar_findings([user()], {}, now)
    states = {(1, CALENDAR_ENDING, "rule:12"): AlertState(True, True, finding.key, now, 0, now)}
    assert evaluate([channel], states, [finding], now + S) == ({}, [])  # still there: quiet
    later = calendar_findings([user()], EXTENDED, now + 3600 * S)
    changed, notes = evaluate([channel], states, later, now + 3600 * S)
    assert [n.kind for n in notes] == [RECOVERY] and not changed[
        (1, CALENDAR_ENDING, "rule:12")
    ].is_open
