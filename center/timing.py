"""A rule's (or a workflow's) fire times, composed: the schedule with its H fields, filtered
by a calendar on each fire's local date, then moved by a deterministic jitter.

Every part is a pure function of the rule's fields, its id and the calendar's data, so every
center computes the same instants (run ids derive from them). Fires stay strictly increasing:
a jittered fire always lands before the next fire of the plain schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from functools import lru_cache
from itertools import pairwise
from typing import Protocol
from zoneinfo import ZoneInfo

from center._cronfields import UNIX_ORDINAL
from center._cronhash import hash_value
from center.calendars import Calendar
from center.cronexpr import Schedule, parse_schedule
from center.errors import RuleError
from protocol.vocabulary import CalendarFallback, CalendarMode

__all__ = ["FireTimes", "Timing", "build_timing", "timing_warning"]

_US = 1_000_000
_DAY_US = 86_400 * _US
MAX_JITTER_S = 86_400
# Calendar days skipped in one search for the next fire, at most: a schedule and a calendar
# that do not meet in that many tries are taken never to meet (the rule stops firing).
MAX_SKIPS = 1000
_GAP_PROBE_FIRES = 32  # fires looked at to find a schedule's shortest gap (for jitter_s)
_GAP_PROBE_US = 1_767_225_600_000_000  # 2026-01-01T00:00Z: any fixed start will do


class FireTimes(Protocol):
    """What the planner, the preview and the misfire logic need: a Schedule, or a Timing."""

    def next_fire_us(self, after_us: int) -> int | None:
        """The first fire strictly after `after_us`; None when there is none again."""

    def preview_us(self, after_us: int, count: int) -> list[int]:
        """The next `count` fires after `after_us`."""

    def __hash__(self) -> int:
        """Fire times are frozen values: the planner and the rule checks memoise by them."""


@dataclass(frozen=True, slots=True)
class Timing:
    """A schedule with a calendar and/or jitter; equal when all of these are equal, so that
    the planner's memo shares next fires only between rules that fire alike."""

    schedule: Schedule
    calendar: Calendar | None = None
    mode: str = CalendarMode.ONLY
    fallback: str = CalendarFallback.SKIP
    jitter_ms: int = 0
    seed: int = 0  # the rule's id; 0 when there is no jitter (H is in the schedule already)
    _zone: ZoneInfo | None = field(default=None, compare=False, repr=False)

    def next_fire_us(self, after_us: int) -> int | None:
        # a plain fire up to jitter_ms before `after` may still land after it
        base_us = self._next_on_calendar(after_us - self.jitter_ms * 1000)
        while base_us is not None:
            following = self.schedule.next_fire_us(base_us) if self.jitter_ms else None
            fire_us = self._jittered(base_us, following)
            if fire_us > after_us:
                return fire_us
            base_us = self._next_on_calendar(base_us, following)
        return None

    def preview_us(self, after_us: int, count: int) -> list[int]:
        fires: list[int] = []
        fire = after_us
        while len(fires) < count:
            following = self.next_fire_us(fire)
            if following is None:
                break
            fires.append(fire := following)
        return fires

    def _next_on_calendar(self, after_us: int, known: int | None = None) -> int | None:
        """The schedule's first fire after `after_us` on a date the calendar lets it run;
        `known`: that first fire, if the caller has it already."""
        fire = known if known is not None else self.schedule.next_fire_us(after_us)
        calendar = self.calendar
        if calendar is None:
            return fire
        for _ in range(MAX_SKIPS):
            if fire is None:
                return None
            day = self._local_day(fire)
            good = calendar.next_day(day, self.mode, self.fallback)
            if good is None or good == day:
                return None if good is None else fire
            # jump to the next good date instead of trying each fire of the bad ones
            fire = self.schedule.next_fire_us(self._midnight_us(good) - 1)
        return None

    def _jittered(self, base_us: int, following: int | None) -> int:
        """base_us moved by its offset; `following` is the schedule's next fire after it."""
        if not self.jitter_ms:
            return base_us
        room_ms = self.jitter_ms
        if following is not None:
            room_ms = min(room_ms, (following - base_us) // 1000)  # keeps fires in order
        return base_us + hash_value(self.seed, "jitter", base_us) % room_ms * 1000

    def _local_day(self, at_us: int) -> int:
        if self._zone is None:
            return at_us // _DAY_US + UNIX_ORDINAL
        return datetime.fromtimestamp(at_us // _US, self._zone).toordinal()

    def _midnight_us(self, ordinal: int) -> int:
        if self._zone is None:
            return (ordinal - UNIX_ORDINAL) * _DAY_US
        # fold=0: a midnight that happens twice counts from its first pass; one in a DST gap
        # maps to the gap's end, at or before the day's first fire
        start = datetime.combine(date.fromordinal(ordinal), time(), tzinfo=self._zone)
        return int(start.timestamp()) * _US


def build_timing(
    expr: str,
    tz: str = "UTC",
    *,
    seed: int | None = None,
    jitter_s: int = 0,
    calendar: Calendar | None = None,
    mode: str = CalendarMode.ONLY,
    fallback: str = CalendarFallback.SKIP,
) -> Schedule | Timing:
    """The fire times of a rule; RuleError names the bad field (rule, timezone, jitter_s,
    calendar_mode, calendar_fallback). A plain rule gets its Schedule, shared with others."""
    schedule = parse_schedule(expr, tz, seed=seed)
    _check_choice("calendar_mode", mode, CalendarMode)
    _check_choice("calendar_fallback", fallback, CalendarFallback)
    check_jitter(schedule, jitter_s)
    if calendar is None and not jitter_s:
        return schedule
    zone = None if tz in ("UTC", "Etc/UTC") else ZoneInfo(tz)
    return Timing(
        schedule,
        calendar,
        mode,
        fallback,
        jitter_s * 1000,
        (seed or 0) if jitter_s else 0,
        zone,
    )


_CHOICES = {CalendarMode: frozenset(CalendarMode), CalendarFallback: frozenset(CalendarFallback)}


def _check_choice(name: str, value: str, allowed: type[CalendarMode | CalendarFallback]) -> None:
    if value not in _CHOICES[allowed]:  # a set made once: this runs for each of 1M rules
        raise RuleError(name, f"{value!r} is not one of {', '.join(allowed)}")


def check_jitter(schedule: Schedule, jitter_s: int) -> None:
    """jitter_s is 0 to a day, and no more than the schedule's shortest gap between fires
    (else the offsets would be cut short to keep fires in order)."""
    if not 0 <= jitter_s <= MAX_JITTER_S:
        raise RuleError("jitter_s", f"{jitter_s} is out of range 0-{MAX_JITTER_S}")
    if jitter_s:
        gap_us = _shortest_gap_us(schedule)
        if gap_us is not None and jitter_s * _US > gap_us:
            raise RuleError(
                "jitter_s",
                f"{jitter_s} s is longer than the {gap_us // _US} s between the rule's closest "
                "fires; fires must stay in order",
            )


@lru_cache(maxsize=4096)
def _shortest_gap_us(schedule: Schedule) -> int | None:
    fires = schedule.preview_us(_GAP_PROBE_US, _GAP_PROBE_FIRES)
    return min((b - a for a, b in pairwise(fires)), default=None)


def timing_warning(times: FireTimes, now_us: int) -> str:
    """What a rule shows when its calendar's data runs out within a year ("" if not)."""
    if not isinstance(times, Timing) or times.calendar is None:
        return ""
    today = datetime.fromtimestamp(now_us // _US, UTC).toordinal()
    return times.calendar.warning(today, times.fallback)
