"""Business calendars as data: built-in ones (weekdays, China's workdays and holidays) and a
group's own (dates and ranges on top of a built-in); which dates they hold, and where their
data ends."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from center.errors import RuleError
from i18n.marks import N_
from protocol.vocabulary import CalendarFallback, CalendarMode

WEEKDAYS, CN_WORKDAYS, CN_HOLIDAYS = "weekdays", "cn-workdays", "cn-holidays"
BUILTINS = (WEEKDAYS, CN_WORKDAYS, CN_HOLIDAYS)
MAX_NAME_CHARS = 64
MAX_SPAN_DAYS = 3660  # one range of a group calendar: ten years
MAX_DAYS = 20_000  # every date of one group calendar, ranges counted out
# How far the search for the next calendar day looks: a calendar that holds no day of a rule's
# in ten years is taken to hold none again (the rule never fires again) instead of looping.
SEARCH_DAYS = 3660
_MON_FRI = frozenset(range(5))  # date.weekday(): Monday is 0


@dataclass(frozen=True, slots=True)
class Calendar:
    """Which dates a calendar holds: by day of the week, except the dates named apart.

    Dates are proleptic Gregorian ordinals (date.toordinal()); a date outside [first, last]
    that is not named apart is one the calendar has no data for.
    """

    name: str
    weekdays: frozenset[int]  # days of the week held by default, Monday = 0
    added: frozenset[int] = frozenset()  # held whatever their day of the week
    removed: frozenset[int] = frozenset()  # not held whatever their day of the week
    first: int | None = None  # the first and last dates with data; None: no limit
    last: int | None = None
    named_last: int = field(default=0, compare=False)  # the last date named apart

    def __post_init__(self) -> None:
        object.__setattr__(self, "named_last", max(self.added | self.removed, default=0))

    def holds(self, ordinal: int) -> bool | None:
        """Whether the date is in the calendar; None when the calendar has no data for it."""
        if ordinal in self.removed:
            return False
        if ordinal in self.added:
            return True
        if not self.has_data(ordinal):
            return None
        return _weekday(ordinal) in self.weekdays

    def has_data(self, ordinal: int) -> bool:
        return (self.first is None or ordinal >= self.first) and (
            self.last is None or ordinal <= self.last
        )

    def lets_fire(self, ordinal: int, mode: str, fallback: str) -> bool:
        """Whether a fire on this date runs, for a rule using the calendar this way."""
        held = self.holds(ordinal)
        if held is None:
            if fallback == CalendarFallback.SKIP:
                return False
            held = _weekday(ordinal) in self.weekdays
        return held if mode == CalendarMode.ONLY else not held

    def next_day(self, ordinal: int, mode: str, fallback: str) -> int | None:
        """The first date on or after `ordinal` on which a fire runs; None when there is none
        within SEARCH_DAYS (nor ever, past the data with fallback `skip`)."""
        for day in range(ordinal, ordinal + SEARCH_DAYS):
            if self.lets_fire(day, mode, fallback):
                return day
            if fallback == CalendarFallback.SKIP and self._past_everything(day):
                return None
        return None

    def _past_everything(self, ordinal: int) -> bool:
        """Past the data and every date named apart: nothing after can run under `skip`."""
        return self.last is not None and ordinal > max(self.last, self.named_last)

    def warning(self, today: int, fallback: str) -> str:
        """What a rule page says when the data ends within a year of `today` ("" if not)."""
        if self.last is None or self.last - today > 366:
            return ""
        what = (
            N_("do not run")
            if fallback == CalendarFallback.SKIP
            else N_("run by the day of the week")
        )
        end = date.fromordinal(self.last).isoformat()
        return N_(f"{self.name} has no data after {end}: fires after it {what} (calendar_fallback)")


def _weekday(ordinal: int) -> int:
    return (ordinal + 6) % 7  # as date.weekday(): day 1 (0001-01-01) was a Monday


def builtin(name: str) -> Calendar | None:
    """A built-in calendar by name, or None."""
    if name == WEEKDAYS:
        return Calendar(WEEKDAYS, _MON_FRI)
    if name in (CN_WORKDAYS, CN_HOLIDAYS):
        return _china(name)
    return None


@lru_cache(maxsize=2)
def _china(name: str) -> Calendar:
    """From the chinesecalendar package: State Council holidays and make-up workdays.

    cn-workdays: Monday-Friday, less the holidays, plus the make-up working days.
    cn-holidays: the days of the official holiday periods (weekend days inside one
    included), not ordinary weekends; `except cn-workdays` is every day off.
    """
    import chinese_calendar  # the package's tables only; read once, then cached

    holidays = frozenset(d.toordinal() for d in chinese_calendar.holidays)
    workdays = frozenset(d.toordinal() for d in chinese_calendar.workdays)
    first = date(date.fromordinal(min(holidays)).year, 1, 1).toordinal()
    last = date(date.fromordinal(max(holidays)).year, 12, 31).toordinal()
    if name == CN_WORKDAYS:
        return Calendar(name, _MON_FRI, workdays, holidays - workdays, first, last)
    return Calendar(name, frozenset(), holidays, frozenset(), first, last)


def group_calendar(name: str, base: str, include: str, exclude: str) -> Calendar:
    """A group's calendar: the base's dates (none for base ""), plus `include`, less
    `exclude`; RuleError names the bad field."""
    check_name(name)
    parent = Calendar(name, frozenset()) if not base else builtin(base)
    if parent is None:
        raise RuleError("base", f"{base!r} is not one of {', '.join(BUILTINS)} (or empty)")
    plus, minus = parse_days(include, "include"), parse_days(exclude, "exclude")
    if len(plus) + len(minus) > MAX_DAYS:
        raise RuleError("include", f"holds more than {MAX_DAYS} dates in all")
    return Calendar(
        name,
        parent.weekdays,
        (parent.added - minus) | plus,
        (parent.removed - plus) | minus,
        parent.first,
        parent.last,
    )


def check_name(name: str) -> None:
    if not name or len(name) > MAX_NAME_CHARS or not all(c.isalnum() or c in "-_." for c in name):
        raise RuleError("name", "give 1-64 letters, digits, '-', '_' or '.'")
    if name in BUILTINS:
        raise RuleError("name", f"{name!r} is a built-in calendar's name")


def parse_days(text: str, field: str) -> frozenset[int]:
    """Dates and ranges, by commas or lines: `2026-10-01..2026-10-07, 2026-12-24`."""
    days: set[int] = set()
    for item in text.replace("\n", ",").split(","):
        if item.strip():
            days.update(_parse_item(item.strip(), field))
            if len(days) > MAX_DAYS:
                raise RuleError(field, f"holds more than {MAX_DAYS} dates")
    return frozenset(days)


def _parse_item(item: str, field: str) -> Iterable[int]:
    first_text, dots, last_text = item.partition("..")
    first = _parse_date(first_text.strip(), field)
    last = _parse_date(last_text.strip(), field) if dots else first
    if last < first:
        raise RuleError(field, f"range {item!r} is reversed")
    if last - first >= MAX_SPAN_DAYS:
        raise RuleError(field, f"range {item!r} is longer than {MAX_SPAN_DAYS} days")
    return range(first, last + 1)


def _parse_date(text: str, field: str) -> int:
    try:
        return date.fromisoformat(text).toordinal()
    except ValueError:
        reason = f"{text[:40]!r} is not a date like 2026-10-01 (or a range a..b)"
        raise RuleError(field, reason) from None


def normalized_days(text: str, field: str) -> str:
    """The stored form: one item per line, as given but checked."""
    parse_days(text, field)
    return "\n".join(i.strip() for i in text.replace("\n", ",").split(",") if i.strip())


def find_calendar(
    name: str, gid: int | None, groups: Mapping[tuple[int, str], Calendar]
) -> Calendar:
    """A group's own calendar by that name, else the built-in; RuleError names `calendar`."""
    found = groups.get((gid, name)) if gid is not None else None
    found = found or builtin(name)
    if found is None:
        where = f" in group {gid}" if gid is not None else ""
        names = ", ".join(BUILTINS)
        raise RuleError("calendar", f"no calendar {name[:64]!r}{where} (built-in: {names})")
    return found
