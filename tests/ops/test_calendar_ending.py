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
RULE_SKIP = f"calendar cn-workdays has no data after {END}: fires of 1 rules/workflows after "
RULE_SKIP += "that do not run (calendar_fallback): payroll (12)"
SUBJECT = "calendar:cn-workdays:skip"


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
            RULE_SKIP.replace("payroll (12)", "close (3)"),
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
    assert finding.subject == f"calendar:{who.calendar}:{who.fallback}" and not finding.cleared
    assert finding.key == END
    assert finding.detail["users"] == [{"kind": who.kind, "id": who.id, "name": who.name}]
    assert finding.detail["total"] == 1
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
    states = {(1, CALENDAR_ENDING, SUBJECT): AlertState(True, True, finding.key, now, 0, now)}
    assert evaluate([channel], states, [finding], now + S) == ({}, [])  # still there: quiet
    later = calendar_findings([user()], EXTENDED, now + 3600 * S)
    changed, notes = evaluate([channel], states, later, now + 3600 * S)
    assert [n.kind for n in notes] == [RECOVERY] and not changed[
        (1, CALENDAR_ENDING, SUBJECT)
    ].is_open


def many(count: int, **values: object) -> list[CalendarUser]:
    return [user(id=i, name=f"r{i:03}", **values) for i in range(1, count + 1)]


@pytest.mark.parametrize(
    ("users", "found"),
    [
        # 500 rules on one calendar: one finding, ten named, the count and 100 in the detail
        (many(500), [(GID, SUBJECT, 500, "r001 (1), r002 (2)", " and 490 more", 100)]),
        (many(10), [(GID, SUBJECT, 10, "r009 (9), r010 (10)", "r010 (10)", 10)]),
        (many(11), [(GID, SUBJECT, 11, "r010 (10)", " and 1 more", 11)]),
        (  # a rule and a workflow together, sorted by kind then name
            [user(), user(kind=WORKFLOW, id=3, name="close")],
            [(GID, SUBJECT, 2, "payroll (12), close (3)", "close (3)", 2)],
        ),
        (  # two fallbacks: two findings, each its own words
            [user(), user(id=13, name="pay2", fallback="weekdays")],
            [
                (GID, SUBJECT, 1, "do not run", "payroll (12)", 1),
                (GID, "calendar:cn-workdays:weekdays", 1, "day of the week", "pay2 (13)", 1),
            ],
        ),
        (  # two groups: two findings, each for its group's channels
            [user(), user(id=13, name="other", gid=GID + 1)],
            [
                (GID, SUBJECT, 1, "payroll (12)", "payroll (12)", 1),
                (GID + 1, SUBJECT, 1, "other (13)", "other (13)", 1),
            ],
        ),
        ([user(), user(id=13, enabled=False)], [(GID, SUBJECT, 1, "", "payroll (12)", 1)]),
    ],
)
def test_one_finding_per_group_calendar_and_fallback(
    users: list[CalendarUser], found: list[tuple[int, str, int, str, str, int]]
):
    findings = calendar_findings(users, {}, at(10))
    assert len(findings) == len(found)
    for f, (gid, subject, total, inside, ending, listed) in zip(findings, found, strict=True):
        assert (f.gid, f.subject, f.key, f.detail["total"]) == (gid, subject, END, total)
        assert f"fires of {total} rules/workflows" in f.summary
        assert inside in f.summary and f.summary.endswith(ending)
        assert len(f.detail["users"]) == listed
    if len(users) == 500:
        assert findings[0].summary.count("(") == 10 + 1  # ten names and "(calendar_fallback)"


def test_one_more_rule_does_not_alert_again_but_a_new_end_does():
    """The key is the end date: the same calendar with one more rule is the same occurrence;
    extended data (a later end, still within WARN_DAYS) opens a new one."""
    channel = Channel(1, GID, "c", "webhook", "http://x/", "s", frozenset({CALENDAR_ENDING}))
    now = at(10)
    [first] = calendar_findings(many(3), {}, now)
    changed, notes = evaluate([channel], {}, [first], now)
    assert [n.kind for n in notes] == ["alert"]
    [more] = calendar_findings(many(4), {}, now + S)
    assert evaluate([channel], changed, [more], now + S)[1] == []
    later = {(GID, CN_WORKDAYS): Calendar(CN_WORKDAYS, CN.weekdays, last=LAST + 5)}
    hour = now + (channel.throttle_s + 1) * S  # past the throttle window
    assert evaluate([channel], changed, [more], hour)[1] == []  # still the same: quiet
    [moved] = calendar_findings(many(4), later, hour)
    assert moved.subject == first.subject and moved.key != first.key
    assert [n.kind for n in evaluate([channel], changed, [moved], hour)[1]] == ["alert"]


def test_a_long_calendar_name_fits_the_subject():
    name = "x" * 64
    cal = {(GID, name): group_calendar(name, CN_WORKDAYS, "", "")}
    [finding] = calendar_findings([user(calendar=name)], cal, at(10))
    assert len(finding.subject) <= 64 and finding.subject.startswith("calendar:")
