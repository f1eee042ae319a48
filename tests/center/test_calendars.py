"""Business calendars: built-in and group ones, `only`/`except`, the fallback past the data,
bounded searches; and the rule book, planner and misfire logic honouring them (pure)."""

from __future__ import annotations

import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from center.calendars import Calendar, builtin, find_calendar, group_calendar
from center.decisions import misfire_plan
from center.errors import RuleError
from center.planner import Planner
from center.rulebook import RuleBook
from center.rules import Rule
from center.timing import build_timing, timing_warning

SHANGHAI = ZoneInfo("Asia/Shanghai")
S = 1_000_000


def _at(text: str, zone: ZoneInfo = SHANGHAI) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()) * S


def _days(fires: list[int], zone: ZoneInfo = SHANGHAI) -> list[str]:
    return [datetime.fromtimestamp(f / S, zone).strftime("%Y-%m-%d %a %H:%M") for f in fires]


def _o(text: str) -> int:
    return date.fromisoformat(text).toordinal()


@pytest.mark.parametrize(
    ("name", "day", "held"),
    [
        ("cn-workdays", "2026-09-30", True),  # Wednesday
        ("cn-workdays", "2026-10-01", False),  # National Day
        ("cn-workdays", "2026-10-07", False),
        ("cn-workdays", "2026-10-10", True),  # Saturday, a make-up working day
        ("cn-workdays", "2026-09-20", True),  # Sunday, a make-up working day
        ("cn-workdays", "2026-10-11", False),  # an ordinary Sunday
        ("cn-workdays", "2027-01-04", None),  # past the package's data
        ("cn-workdays", "2003-06-02", None),  # before it
        ("cn-holidays", "2026-10-03", True),  # a Saturday inside the holiday
        ("cn-holidays", "2026-10-10", False),
        ("cn-holidays", "2026-11-07", False),  # an ordinary Saturday is no holiday
        ("cn-holidays", "2026-02-17", True),  # Spring Festival
        ("weekdays", "2026-10-01", True),
        ("weekdays", "2026-10-10", False),
        ("weekdays", "9999-12-31", True),  # no end of data
    ],
)
def test_builtin_calendars_hold_the_official_days(name, day, held):
    calendar = builtin(name)
    assert calendar is not None and calendar.holds(_o(day)) is held


def test_done_when_cn_workdays_preview():
    """`0 9 * * *` in Asia/Shanghai with cn-workdays from 2026-09-28: no weekend, nothing in
    2026-10-01..07, and the make-up working day Saturday 2026-10-10."""
    times = build_timing("0 9 * * *", "Asia/Shanghai", calendar=builtin("cn-workdays"))
    days = _days(times.preview_us(_at("2026-09-28T00:00"), 12))
    assert days[:7] == [
        "2026-09-28 Mon 09:00",
        "2026-09-29 Tue 09:00",
        "2026-09-30 Wed 09:00",
        "2026-10-08 Thu 09:00",
        "2026-10-09 Fri 09:00",
        "2026-10-10 Sat 09:00",
        "2026-10-12 Mon 09:00",
    ]
    assert not any(d.split()[1] == "Sun" or ("2026-10-0" in d[:10] and d[9] <= "7") for d in days)
    assert all(d.split()[1] != "Sat" or d.startswith("2026-10-10") for d in days)


@pytest.mark.parametrize(
    ("mode", "fallback", "start", "expected"),
    [
        # except cn-holidays: every day but the holiday period
        ("except", "skip", "2026-09-29T10:00", ["2026-09-30", "2026-10-08", "2026-10-09"]),
        # past the data: skip runs nothing, weekdays judges by the day of the week
        ("only", "skip", "2026-12-30T10:00", ["2026-12-31"]),
        ("only", "weekdays", "2026-12-30T10:00", ["2026-12-31", "2027-01-01", "2027-01-04"]),
        ("except", "skip", "2026-12-30T10:00", []),
    ],
)
def test_modes_and_fallback(mode, fallback, start, expected):
    name = "cn-holidays" if mode == "except" else "cn-workdays"
    times = build_timing(
        "0 9 * * *", "Asia/Shanghai", calendar=builtin(name), mode=mode, fallback=fallback
    )
    fires = times.preview_us(_at(start), 3)
    if mode == "except" and fallback == "skip" and start.startswith("2026-12-30"):
        assert _days(fires)[:1] == ["2026-12-31 Thu 09:00"] and len(fires) == 1
        return
    assert [d[:10] for d in _days(fires)] == expected


def test_the_warning_names_the_end_of_the_data():
    times = build_timing("0 9 * * *", "Asia/Shanghai", calendar=builtin("cn-workdays"))
    warning = timing_warning(times, _at("2026-12-04T00:00"))
    assert warning.startswith("cn-workdays has no data after 2026-12-31")
    assert timing_warning(times, _at("2025-06-01T00:00")) == ""  # more than a year ahead
    assert timing_warning(build_timing("0 9 * * *"), _at("2026-12-04T00:00")) == ""


@pytest.mark.parametrize(
    ("expr", "name", "fallback"),
    [
        ("0 0 1 1 *", "cn-workdays", "skip"),  # New Year's Day is never a working day
        ("0 0 * * 0", "weekdays", "skip"),  # Sundays only, weekdays only: never
        ("* * * * * *", "cn-workdays", "skip"),  # every second, past the data
    ],
)
def test_a_calendar_that_never_matches_again_ends_the_rule_quickly(expr, name, fallback):
    """No endless loop: the search gives up (the rule never fires again) in well under a
    second, even for an every-second rule."""
    times = build_timing(expr, "Asia/Shanghai", calendar=builtin(name), fallback=fallback)
    started = time.perf_counter()
    assert times.next_fire_us(_at("2027-01-01T00:00")) is None
    assert time.perf_counter() - started < 1.0


def test_a_long_holiday_is_skipped_by_days_not_by_fires():
    """An every-second rule over the 7-day National Day holiday finds the next working day at
    once (it jumps to the next good date)."""
    times = build_timing("* * * * * *", "Asia/Shanghai", calendar=builtin("cn-workdays"))
    started = time.perf_counter()
    fire = times.next_fire_us(_at("2026-09-30T23:59:59"))
    assert time.perf_counter() - started < 0.1
    assert _days([fire or 0]) == ["2026-10-08 Thu 00:00"]


@pytest.mark.parametrize(
    ("base", "include", "exclude", "day", "held"),
    [
        ("cn-workdays", "2026-10-03", "", "2026-10-03", True),
        ("cn-workdays", "", "2026-10-09", "2026-10-09", False),
        ("cn-workdays", "", "2026-12-28..2026-12-31", "2026-12-30", False),
        ("cn-workdays", "2027-01-05", "", "2027-01-05", True),  # named apart: known past data
        ("", "2026-05-01..2026-05-03\n2026-06-01", "", "2026-05-02", True),
        ("", "2026-05-01..2026-05-03", "", "2026-05-04", False),
        ("weekdays", "", "2026-05-01, 2026-05-04", "2026-05-04", False),
    ],
)
def test_group_calendars_on_top_of_a_base(base, include, exclude, day, held):
    assert group_calendar("ops", base, include, exclude).holds(_o(day)) is held


@pytest.mark.parametrize(
    ("name", "base", "include", "field"),
    [
        ("ops", "nope", "", "base"),
        ("ops", "", "2026-13-01", "include"),
        ("ops", "", "2026-10-07..2026-10-01", "include"),
        ("ops", "", "2000-01-01..2020-01-01", "include"),
        ("cn-workdays", "", "", "name"),
        ("a b", "", "", "name"),
        ("", "", "", "name"),
    ],
)
def test_bad_group_calendars_name_the_field(name, base, include, field):
    with pytest.raises(RuleError) as caught:
        group_calendar(name, base, include, "")
    assert caught.value.field == field


def test_find_calendar_prefers_the_group_and_names_the_field():
    own = group_calendar("weekly-freeze", "", "2026-10-01", "")
    groups = {(3, "weekly-freeze"): own}
    assert find_calendar("weekly-freeze", 3, groups) is own
    assert find_calendar("weekdays", 3, groups) == builtin("weekdays")
    with pytest.raises(RuleError) as caught:
        find_calendar("weekly-freeze", 4, groups)
    assert caught.value.field == "calendar" and "group 4" in caught.value.reason


# ---------------------------------------------------------------- the center's use


def _rule(**fields: object) -> Rule:
    values = {"id": 5, "gid": 3, "rule": "0 9 * * *", "execute": "true"} | fields
    return Rule(timezone="Asia/Shanghai", **values)  # type: ignore[arg-type]


def test_planner_skips_excluded_days():
    """A rule with `only cn-workdays` is not planned on 2026-10-01..07 (fixed `now`)."""
    book = RuleBook()
    changes = book.update([_rule(calendar="cn-workdays")], complete=True)
    planner = Planner()
    for task_id, times in changes.plan:
        planner.set_rule(task_id, times, _at("2026-09-30T10:00"))
    fires = [f.sched_us for f in planner.due(_at("2026-10-08T23:00"))]
    assert _days(fires) == ["2026-10-08 Thu 09:00"]


def test_group_calendar_changes_replan_its_rules():
    """A rule naming a group calendar is invalid (field calendar) until it exists, then planned
    by it; an edit of the calendar re-plans the rule, other rules stay."""
    book = RuleBook()
    first = book.update(
        [_rule(calendar="freeze", calendar_mode="except"), _rule(id=6)], complete=True
    )
    assert first.errors[5].startswith("calendar: no calendar 'freeze' in group 3")
    changes = book.update_calendars({(3, "freeze"): group_calendar("freeze", "", "2026-10-09", "")})
    assert [t for t, _ in changes.plan] == [5] and changes.errors == {5: ""}
    times = book.schedules[5]
    assert _days(times.preview_us(_at("2026-10-08T10:00"), 1)) == ["2026-10-10 Sat 09:00"]
    again = book.update_calendars({(3, "freeze"): group_calendar("freeze", "", "2026-10-10", "")})
    assert [t for t, _ in again.plan] == [5]
    assert _days(book.schedules[5].preview_us(_at("2026-10-08T10:00"), 1)) == [
        "2026-10-09 Fri 09:00"
    ]
    assert not book.update_calendars(dict(book.calendars))  # unchanged: nothing to do


def test_misfire_catch_up_honours_the_calendar():
    """After an outage over the holiday, `all` runs only the fires on working days."""
    times = build_timing("0 9 * * *", "Asia/Shanghai", calendar=builtin("cn-workdays"))
    plan = misfire_plan(
        times,
        "all",
        30 * 86_400,
        gap_from_us=_at("2026-09-29T10:00"),
        now_us=_at("2026-10-10T10:00"),
    )
    assert [d[:10] for d in _days(list(plan.run))] == [
        "2026-09-30",
        "2026-10-08",
        "2026-10-09",
        "2026-10-10",
    ]


def test_calendar_data_is_plain_data():
    """A calendar is a frozen value: equal contents compare equal (the planner memo keys)."""
    assert Calendar("x", frozenset({0})) == Calendar("x", frozenset({0}))
    assert builtin("cn-workdays") is builtin("cn-workdays")
