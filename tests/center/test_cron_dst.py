"""Cron rules across DST changes, checked against a brute-force reading of the documented rules.

The reference walks every second around each 2026 transition of several zones and applies the
documented semantics directly: an instant fires when its local wall time matches (in the
second pass of a repeated span only for rules whose hour field allows every hour), and the
first instant after a gap fires when any wall time inside the gap matches.
"""

from __future__ import annotations

import bisect
from datetime import datetime
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import pytest

from center._cronfields import CronFields, compile_fields
from center.cronexpr import parse_schedule

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute shift
    "Antarctica/Troll",  # 2-hour shift
    "America/Santiago",  # changes at midnight: the repeated span is the previous day's 23:00
    "Europe/Dublin",  # "negative DST": winter is the daylight-saving period in tzdata
    "Asia/Kolkata",  # no change at all
]
RULES = [
    "* * * * *",
    "*/7 * * * * *",
    "0 */25 * * * *",
    "30 2 * * *",
    "*/15 1-3 * * *",
    "0 0 * * *",
    "30 23 * * *",
    "0,30 0-3 * * *",
    "10 20 * * * *",
]
WINDOW_S = 100 * 60
YEAR_2026 = (int(datetime.fromisoformat("2026-01-01T00:00:00+00:00").timestamp()), 365 * 86_400)


def _offset_s(zone: ZoneInfo, instant: int) -> int:
    delta = datetime.fromtimestamp(instant, zone).utcoffset()
    assert delta is not None
    return int(delta.total_seconds())


def _transitions(zone: ZoneInfo) -> list[int]:
    """Instants in 2026 where the zone's UTC offset changes (first instant of the new offset)."""
    start, span = YEAR_2026
    found = []
    for day_start in range(start, start + span, 86_400):
        lo, hi = day_start, day_start + 86_400
        if _offset_s(zone, lo) == _offset_s(zone, hi):
            continue
        while hi - lo > 1:
            middle = (lo + hi) // 2
            lo, hi = (
                (middle, hi) if _offset_s(zone, middle) == _offset_s(zone, lo) else (lo, middle)
            )
        found.append(hi)
    return found


def _compile(rule: str) -> CronFields:
    fields = rule.split()
    texts = (["0"] if len(fields) == 5 else []) + fields
    return compile_fields((texts[0], texts[1], texts[2], texts[3], texts[4], texts[5]))


def _matching_walls(fields: CronFields, lo: int, hi: int) -> set[int]:
    walls: set[int] = set()
    wall = fields.next_wall(lo)
    while wall is not None and wall <= hi:
        walls.add(wall)
        wall = fields.next_wall(wall + 1)
    return walls


@cache
def _reference_fires(rule: str, zone: ZoneInfo, change: int) -> list[int]:
    """Every fire in the window around `change`, second by second, from the documented rules."""
    fields = _compile(rule)
    lo, hi = change - WINDOW_S, change + WINDOW_S
    before, after = _offset_s(zone, lo), _offset_s(zone, hi)
    walls = _matching_walls(fields, lo + min(before, after), hi + max(before, after))
    fires = []
    for instant in range(lo, hi + 1):
        wall = instant + (before if instant < change else after)
        second_pass = after < before and change <= instant < change + before - after
        if wall in walls and (fields.every_hour or not second_pass):
            fires.append(instant)
        elif instant == change and after > before:
            gap = range(change + before, change + after)
            if any(gap_wall in walls for gap_wall in gap):
                fires.append(instant)
    return fires


@lru_cache(maxsize=1)
def _cases() -> list[tuple[str, str, int]]:
    cases: list[tuple[str, str, int]] = []
    for name in ZONES:
        changes = _transitions(ZoneInfo(name)) or [YEAR_2026[0] + 100 * 86_400]
        cases.extend((rule, name, change) for rule in RULES for change in changes)
    return cases


@pytest.mark.parametrize(("rule", "tz", "change"), _cases())
def test_fires_around_transition_match_reference(rule: str, tz: str, change: int) -> None:
    """Consecutive fires around a DST change are exactly the brute-force reference's."""
    expected = _reference_fires(rule, ZoneInfo(tz), change)
    schedule = parse_schedule(rule, tz)
    lo, hi = change - WINDOW_S, change + WINDOW_S
    got: list[int] = []
    fire = schedule.next_fire_us((lo - 1) * 1_000_000)
    while fire is not None and fire <= hi * 1_000_000:
        got.append(fire // 1_000_000)
        fire = schedule.next_fire_us(fire)
    assert got == expected


@pytest.mark.parametrize(("rule", "tz", "change"), _cases())
def test_next_fire_from_any_start_matches_reference(rule: str, tz: str, change: int) -> None:
    """From start instants all over the window (either pass, in a gap's wake), the next fire is
    the reference's first fire after it."""
    expected = _reference_fires(rule, ZoneInfo(tz), change)
    schedule = parse_schedule(rule, tz)
    lo, hi = change - WINDOW_S, change + WINDOW_S
    for start in [*range(lo, hi, 97), change - 1, change, change + 1]:
        index = bisect.bisect_right(expected, start)
        if index == len(expected):
            continue
        fire = schedule.next_fire_us(start * 1_000_000)
        assert fire == expected[index] * 1_000_000, (start, change)
