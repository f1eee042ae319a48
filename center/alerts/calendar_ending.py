"""The calendar_ending condition (pure): which rules and workflows use a calendar whose data
ends within WARN_DAYS of now, and what their fires do after it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from center.alerts.model import CALENDAR_ENDING, Finding
from center.calendars import Calendar, find_calendar
from center.errors import RuleError
from center.timing import build_timing
from i18n.marks import N_
from protocol.vocabulary import CalendarFallback

# A month: time to upgrade chinesecalendar (the State Council publishes the next year's
# holidays in November) or to give the group a calendar of its own.
WARN_DAYS = 30
RULE, WORKFLOW = "rule", "workflow"  # what uses the calendar: the subject's and detail's kind
_US = 1_000_000
NAMED = 10  # users named in the summary (a chat message stays short); the count is always said
DETAILED = 100  # users listed in the payload's detail, with the total
SUBJECT_MAX = 64  # alert_state.subject


@dataclass(frozen=True, slots=True)
class CalendarUser:
    """A rule or a workflow with a calendar, as the check reads it."""

    kind: str  # RULE or WORKFLOW
    id: int
    name: str
    gid: int
    calendar: str
    fallback: str
    expr: str  # its cron expression: does it fire at all after the data ends?
    timezone: str = "UTC"
    enabled: bool = True


def today_ordinal(now_us: int) -> int:
    return datetime.fromtimestamp(now_us / _US, UTC).date().toordinal()


def ending_last(cal: Calendar, now_us: int) -> int | None:
    """The calendar's last date with data when that is at most WARN_DAYS from today (or past);
    None when it has no end or ends later."""
    if cal.last is None or cal.last - today_ordinal(now_us) > WARN_DAYS:
        return None
    return cal.last


def ending_calendars(
    groups: Mapping[tuple[int, str], Calendar], builtins: Iterable[Calendar], now_us: int
) -> set[str]:
    """The names worth looking for in the rules: each ending calendar computed once."""
    everyone = [*groups.values(), *builtins]
    return {c.name for c in everyone if ending_last(c, now_us) is not None}


@lru_cache(maxsize=4096)
def _fires_after(expr: str, tz: str, last: int) -> bool:
    """Whether the expression alone (no calendar) has a fire after the day `last`: one-offs and
    expressions bounded by a year are not affected. Cached: many rules share an expression."""
    try:
        schedule = build_timing(expr, tz or "UTC", seed=0)
    except RuleError:
        return False  # the center reports it on the rule itself
    # Midnight starting the first day without data, in the rule's own time zone.
    after = datetime.combine(date.fromordinal(last + 1), time(0), ZoneInfo(tz or "UTC"))
    return schedule.next_fire_us(int(after.timestamp()) * _US - 1) is not None


def affected_last(
    user: CalendarUser, groups: Mapping[tuple[int, str], Calendar], now_us: int
) -> int | None:
    """The last date of the user's calendar when the user is enabled, that calendar ends within
    WARN_DAYS (or has ended) and the user would fire after it; None when it is not affected."""
    if not user.enabled or not user.calendar:
        return None
    try:
        cal = find_calendar(user.calendar, user.gid, groups)
    except RuleError:
        return None  # the rule shows its error; the planner does not fire it
    last = ending_last(cal, now_us)
    if last is None or not _fires_after(user.expr, user.timezone, last):
        return None
    return last


def calendar_findings(
    users: Iterable[CalendarUser],
    groups: Mapping[tuple[int, str], Calendar],
    now_us: int,
) -> list[Finding]:
    """One occurrence per (group, calendar, fallback) that some affected user has, naming them:
    a group of 500 rules on one calendar gets one message. Those no longer found are over."""
    by: dict[tuple[int, str, str, int], list[CalendarUser]] = {}
    for user in users:
        last = affected_last(user, groups, now_us)
        if last is not None:
            by.setdefault((user.gid, user.calendar, user.fallback, last), []).append(user)
    return [_finding(*k, v) for k, v in sorted(by.items(), key=lambda kv: kv[0][:3])]


def subject_of(calendar: str, fallback: str) -> str:
    """`calendar:<name>:<fallback>` (the group is the channel's); a long name by its hash, as
    alert_state's subject holds 64 characters."""
    subject = f"calendar:{calendar}:{fallback}"
    if len(subject) <= SUBJECT_MAX:
        return subject
    return f"calendar:{hashlib.sha1(calendar.encode()).hexdigest()[:20]}:{fallback}"


def _named(users: list[CalendarUser]) -> str:
    """The first NAMED of them as "name (id)", with how many more."""
    listed = ", ".join(f"{u.name} ({u.id})" for u in users[:NAMED])
    more = len(users) - NAMED
    return N_(f"{listed} and {more} more") if more > 0 else listed


def _finding(gid: int, cal: str, fallback: str, last: int, users: list[CalendarUser]) -> Finding:
    users = sorted(users, key=lambda u: (u.kind, u.name, u.id))
    what = (
        N_("do not run") if fallback == CalendarFallback.SKIP else N_("run by the day of the week")
    )
    end, count, names = date.fromordinal(last).isoformat(), len(users), _named(users)
    # A whole sentence (translated by matching the English one), the fallback's words inside.
    summary = N_(
        f"calendar {cal} has no data after {end}: fires of {count} rules/workflows after "
        f"that {what} (calendar_fallback): {names}"
    )
    detail = {
        "calendar": {"name": cal, "last": end, "fallback": fallback},
        "users": [{"kind": u.kind, "id": u.id, "name": u.name} for u in users[:DETAILED]],
        "total": count,
    }
    # The key is the end date (the subject holds calendar and fallback): one more rule on it
    # does not alert again; the data extended to another end, or ended, does.
    return Finding(CALENDAR_ENDING, subject_of(cal, fallback), gid, summary, key=end, detail=detail)
