"""Cron fields compiled to lookup tables, and the wall-clock search for the next match."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from center.errors import RuleError
from i18n.marks import N_

UNIX_ORDINAL = date(1970, 1, 1).toordinal()
DAY_S = 86_400
# The last year searched: one short of `datetime`'s limit, so that converting a wall time
# there to an instant in any time zone cannot overflow.
MAX_YEAR = 9998
# Every day pattern repeats within a 400-year Gregorian cycle, so a rule with no match in that
# span never fires; this bound makes the search for such a rule terminate.
_HORIZON_MONTHS = 400 * 12
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Longest each month can be in any year: what a day-of-month must fit for the rule to ever fire.
_MONTH_MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAY_NAMES = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}

# How day-of-month and day-of-week combine (Vixie cron): only a restricted field counts,
# and when both are restricted a day matches either.
_ALL_DAYS, _DOM_ONLY, _DOW_ONLY, _DOM_OR_DOW = range(4)


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    lo: int
    hi: int
    star_hi: int  # top of `*` and of `a/n`: 6 for day-of-week, where 7 only aliases Sunday
    names: Mapping[str, int]


SECOND = _Field(N_("second"), 0, 59, 59, {})
MINUTE = _Field(N_("minute"), 0, 59, 59, {})
HOUR = _Field(N_("hour"), 0, 23, 23, {})
DOM = _Field(N_("day-of-month"), 1, 31, 31, {})
MONTH = _Field(N_("month"), 1, 12, 12, _MONTH_NAMES)
DOW = _Field(N_("day-of-week"), 0, 7, 6, _DAY_NAMES)


def _error(spec: _Field, reason: str) -> RuleError:
    return RuleError("rule", f"{spec.name} field: {reason}")


def _is_star(text: str) -> bool:
    return text in ("*", "?")


def _parse_value(text: str, spec: _Field) -> int:
    if text.isascii() and text.isdigit():
        value = int(text)
    elif text.upper() in spec.names:
        value = spec.names[text.upper()]
    else:
        kind = N_("a number or a name") if spec.names else N_("a number")
        raise _error(spec, N_(f"{text!r} is not {kind}"))
    if not spec.lo <= value <= spec.hi:
        raise _error(spec, N_(f"{value} is out of range {spec.lo}-{spec.hi}"))
    return value


def _parse_step(item: str, text: str, spec: _Field) -> int:
    if not (text.isascii() and text.isdigit()):
        raise _error(spec, N_(f"step {text!r} in {item!r} is not a number"))
    step = int(text)
    top = spec.star_hi - spec.lo
    if not 1 <= step <= top:
        raise _error(spec, N_(f"step {step} in {item!r} is out of range 1-{top}"))
    return step


def _parse_item(item: str, spec: _Field) -> range:
    base, slash, step_text = item.partition("/")
    if base == "*":
        lo, hi = spec.lo, spec.star_hi
    elif "-" in base:
        first, _, last = base.partition("-")
        lo, hi = _parse_value(first, spec), _parse_value(last, spec)
        if lo > hi:
            raise _error(spec, N_(f"range {base!r} is reversed"))
    else:
        lo = _parse_value(base, spec)
        # `a/n` runs from a to the top of the field, like `a-max/n`
        hi = max(lo, spec.star_hi) if slash else lo
    step = _parse_step(item, step_text, spec) if slash else 1
    return range(lo, hi + 1, step)


def _split_list(text: str, spec: _Field) -> list[str]:
    if not text:
        raise _error(spec, N_("is empty"))
    items = text.split(",")
    if "" in items:
        raise _error(spec, N_(f"empty item in list {text!r}"))
    if "?" in items and len(items) > 1:
        raise _error(spec, N_(f"'?' must stand alone, not in list {text!r}"))
    return items


def parse_values(text: str, spec: _Field) -> frozenset[int]:
    """The values a plain field (no `L`, no `#`) allows; `*` and `?` allow them all."""
    if _is_star(text):
        return frozenset(range(spec.lo, spec.star_hi + 1))
    values: set[int] = set()
    for item in _split_list(text, spec):
        values.update(_parse_item(item, spec))
    return frozenset(values)


@lru_cache(maxsize=4096)
def _next_table(allowed: frozenset[int], size: int) -> tuple[int, ...]:
    """table[v] = smallest allowed value >= v, or -1: one lookup instead of a scan per call.

    Cached: most rules share their tables (`0`, `*`, `*/5`), and so share the memory too.
    """
    table = [-1] * (size + 1)
    following = -1
    for value in range(size - 1, -1, -1):
        if value in allowed:
            following = value
        table[value] = following
    return tuple(table)


def _low_bit(bits: int) -> int:
    return (bits & -bits).bit_length() - 1


def _month_days(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month]


@dataclass(frozen=True, slots=True)
class _DayOfMonth:
    mask: int  # bit d-1 set for each allowed day d
    last: bool  # `L`: the last day of each month


@dataclass(frozen=True, slots=True)
class _DayOfWeek:
    weekdays: frozenset[int]  # 0 = Sunday
    nth: tuple[tuple[int, int], ...]  # (weekday, k) from `w#k`
    last: tuple[int, ...]  # weekdays from `wL`


def _parse_dom(text: str) -> _DayOfMonth:
    if _is_star(text):
        return _DayOfMonth((1 << 31) - 1, last=False)
    mask, last = 0, False
    for item in _split_list(text, DOM):
        if item.upper() == "L":
            last = True
        else:
            for day in _parse_item(item, DOM):
                mask |= 1 << (day - 1)
    return _DayOfMonth(mask, last)


def _parse_dow_item(item: str, nth: set[tuple[int, int]], last: set[int]) -> range:
    if "#" in item:
        day_text, _, k_text = item.partition("#")
        if not (k_text.isascii() and k_text.isdigit() and 1 <= int(k_text) <= 5):
            raise _error(DOW, N_(f"{k_text!r} in {item!r} is not a week of the month 1-5"))
        nth.add((_parse_value(day_text, DOW) % 7, int(k_text)))
        return range(0)
    if len(item) > 1 and item[-1] in "Ll":
        last.add(_parse_value(item[:-1], DOW) % 7)
        return range(0)
    return _parse_item(item, DOW)


def _parse_dow(text: str) -> _DayOfWeek:
    if _is_star(text):
        return _DayOfWeek(frozenset(range(7)), (), ())
    weekdays: set[int] = set()
    nth: set[tuple[int, int]] = set()
    last: set[int] = set()
    for item in _split_list(text, DOW):
        if item.upper() == "L":
            raise _error(DOW, N_("'L' needs a weekday before it, e.g. 5L for the last Friday"))
        weekdays.update(day % 7 for day in _parse_dow_item(item, nth, last))
    return _DayOfWeek(frozenset(weekdays), tuple(sorted(nth)), tuple(sorted(last)))


@lru_cache(maxsize=128)
def _weekday_patterns(weekdays: frozenset[int]) -> tuple[int, ...]:
    """Per weekday of the 1st of a month: the bits of days 1-31 falling on allowed weekdays."""
    # bit q of `weeks` is set when weekday q % 7 is allowed; day d of a month starting on
    # weekday `first` sits at bit d - 1 + first of it
    week = sum(1 << day for day in weekdays)
    weeks = sum(week << (7 * n) for n in range(6))
    return tuple((weeks >> first) & ((1 << 31) - 1) for first in range(7))


def _day_rule(dom_text: str, dow_text: str) -> int:
    if _is_star(dom_text):
        return _ALL_DAYS if _is_star(dow_text) else _DOW_ONLY
    return _DOM_ONLY if _is_star(dow_text) else _DOM_OR_DOW


def _check_dom_can_occur(dom: _DayOfMonth, months: frozenset[int], texts: tuple[str, str]) -> None:
    """Reject `0 0 30 2 *` at parse time: a day that no chosen month has would never fire."""
    if dom.last:
        return
    longest = max(_MONTH_MAX_DAYS[month] for month in months)
    first_day = _low_bit(dom.mask) + 1
    if first_day > longest:
        raise _error(DOM, N_(f"{texts[0]} never occurs in month {texts[1]}"))


@dataclass(frozen=True, slots=True)
class CronFields:
    """A cron expression compiled to tables; finds matching wall-clock times as integers.

    Wall-clock time is counted like Unix time but on the local calendar: seconds since
    1970-01-01T00:00:00 local, no time zone involved.
    """

    second_next: tuple[int, ...]
    minute_next: tuple[int, ...]
    hour_next: tuple[int, ...]
    month_next: tuple[int, ...]
    day_rule: int
    dom: _DayOfMonth
    dow_patterns: tuple[int, ...]
    dow: _DayOfWeek
    every_hour: bool  # the hour field allows all 24 hours (matters for the repeated DST hour)
    first_time_s: int  # the earliest matching second of any matching day

    def next_wall(self, wall: int) -> int | None:
        """The first matching wall-clock second >= `wall`, or None if there is none."""
        days, time_s = divmod(wall, DAY_S)
        ordinal = days + UNIX_ORDINAL
        today = date.fromordinal(ordinal)
        year, month, day = today.year, today.month, today.day
        if self.month_next[month] == month:
            mask = self._day_mask(year, month, ordinal - day + 1)
            if mask >> (day - 1) & 1:
                found_s = self._next_time(time_s)
                if found_s >= 0:
                    return days * DAY_S + found_s
            later = mask >> day
            if later:
                return (days + 1 + _low_bit(later)) * DAY_S + self.first_time_s
        found = self._first_day_from(year, month + 1)
        return None if found is None else (found - UNIX_ORDINAL) * DAY_S + self.first_time_s

    def _next_time(self, time_s: int) -> int:
        """The first matching second of the day >= `time_s`, or -1."""
        hour, rest = divmod(time_s, 3600)
        minute, second = divmod(rest, 60)
        if self.hour_next[hour] == hour:
            if self.minute_next[minute] == minute:
                found = self.second_next[second]
                if found >= 0:
                    return time_s - second + found
            minute = self.minute_next[minute + 1]
            if minute >= 0:
                return hour * 3600 + minute * 60 + self.second_next[0]
        hour = self.hour_next[hour + 1]
        if hour < 0:
            return -1
        return hour * 3600 + self.minute_next[0] * 60 + self.second_next[0]

    def _first_day_from(self, year: int, month: int) -> int | None:
        """The ordinal of the first matching day on or after the 1st of (year, month <= 13)."""
        for _ in range(_HORIZON_MONTHS):
            month = self.month_next[month]
            if month < 0:
                year, month = year + 1, self.month_next[1]
            if year > MAX_YEAR:
                return None
            first = date(year, month, 1).toordinal()
            mask = self._day_mask(year, month, first)
            if mask:
                return first + _low_bit(mask)
            month += 1
        return None

    def _day_mask(self, year: int, month: int, first_ordinal: int) -> int:
        """Bit d-1 set for each matching day d of the month."""
        length = _month_days(year, month)
        full = (1 << length) - 1
        if self.day_rule == _ALL_DAYS:
            return full
        dom = self.dom.mask & full
        if self.dom.last:
            dom |= 1 << (length - 1)
        if self.day_rule == _DOM_ONLY:
            return dom
        # date ordinals count from a Monday (1), so ordinal % 7 is the weekday with Sunday = 0
        dow = self._dow_mask(length, first_ordinal % 7)
        return dow if self.day_rule == _DOW_ONLY else dom | dow

    def _dow_mask(self, length: int, first_weekday: int) -> int:
        bits = self.dow_patterns[first_weekday] & ((1 << length) - 1)
        for weekday, k in self.dow.nth:
            day = 1 + (weekday - first_weekday) % 7 + 7 * (k - 1)
            if day <= length:
                bits |= 1 << (day - 1)
        last_weekday = (first_weekday + length - 1) % 7
        for weekday in self.dow.last:
            bits |= 1 << (length - 1 - (last_weekday - weekday) % 7)
        return bits


def compile_fields(texts: tuple[str, str, str, str, str, str]) -> CronFields:
    """Compile `sec min hour dom month dow` texts; raises RuleError naming the bad field."""
    sec_text, min_text, hour_text, dom_text, month_text, dow_text = texts
    seconds, minutes = parse_values(sec_text, SECOND), parse_values(min_text, MINUTE)
    hours, months = parse_values(hour_text, HOUR), parse_values(month_text, MONTH)
    dom, dow = _parse_dom(dom_text), _parse_dow(dow_text)
    rule = _day_rule(dom_text, dow_text)
    if rule == _DOM_ONLY:
        _check_dom_can_occur(dom, months, (dom_text, month_text))
    return CronFields(
        second_next=_next_table(seconds, 60),
        minute_next=_next_table(minutes, 60),
        hour_next=_next_table(hours, 24),
        month_next=_next_table(months, 13),
        day_rule=rule,
        dom=dom,
        dow_patterns=_weekday_patterns(dow.weekdays),
        dow=dow,
        every_hour=len(hours) == 24,
        first_time_s=min(hours) * 3600 + min(minutes) * 60 + min(seconds),
    )
