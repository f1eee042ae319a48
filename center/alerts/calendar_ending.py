"""The calendar_ending condition (pure): which rules and workflows use a calendar whose data
ends within WARN_DAYS of now, and what their fires do after it."""

from __future__ import annotations

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


def calendar_findings(
    users: Iterable[CalendarUser],
    groups: Mapping[tuple[int, str], Calendar],
    now_us: int,
) -> list[Finding]:
    """One occurrence per enabled user whose calendar ends within WARN_DAYS (or has ended)
    and which would fire after that; users not listed, or no longer ending, are over."""
    out = []
    for user in users:
        if not user.enabled or not user.calendar:
            continue
        try:
            cal = find_calendar(user.calendar, user.gid, groups)
        except RuleError:
            continue  # the rule shows its error; the planner does not fire it
        last = ending_last(cal, now_us)
        if last is not None and _fires_after(user.expr, user.timezone, last):
            out.append(_finding(user, last))
    return out


def _finding(user: CalendarUser, last: int) -> Finding:
    what = (
        N_("do not run")
        if user.fallback == CalendarFallback.SKIP
        else N_("run by the day of the week")
    )
    end, cal, name, ident = date.fromordinal(last).isoformat(), user.calendar, user.name, user.id
    # Whole sentences (translated by matching the English one), the fallback's words inside.
    if user.kind == WORKFLOW:
        summary = N_(
            f"workflow {name} ({ident}): calendar {cal} has no data after {end}: "
            f"its fires after that {what} (calendar_fallback)"
        )
    else:
        summary = N_(
            f"rule {name} ({ident}): calendar {cal} has no data after {end}: "
            f"its fires after that {what} (calendar_fallback)"
        )
    detail = {
        user.kind: {"id": user.id, "name": user.name},
        "calendar": {"name": cal, "last": end, "fallback": user.fallback},
    }
    return Finding(
        CALENDAR_ENDING,
        f"{user.kind}:{user.id}",
        user.gid,
        summary,
        key=f"{cal}/{end}/{user.fallback}",
        detail=detail,
    )
