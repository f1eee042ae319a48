"""Cron maths: parse a rule into a Schedule and compute its fire instants, given `now`.

Rule syntax
-----------
* 5 fields ``min hour dom month dow`` (standard cron), or 6 fields with seconds first,
  ``sec min hour dom month dow`` (Quartz / xxl-job order: ``*/10 * * * * *`` = every 10 s).
  A 5-field rule fires at second 0.
* Ranges: second 0-59, minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC,
  day-of-week 0-7 or SUN-SAT (0 and 7 are both Sunday). Names are case-insensitive.
* In each field: ``*`` (every value), ``?`` (same as ``*``, a Quartz habit), a value ``5``,
  a range ``1-5``, steps ``*/15``, ``10-40/10`` and ``10/15`` (from 10 to the field's top),
  and comma lists of these: ``0,15-20,*/30``. A step is 1 up to the field's top minus its
  bottom (59 for minutes, 6 for days of the week). Reversed ranges (``5-1``), out-of-range
  values and empty list items are errors.
* Day-of-month ``L``: the last day of the month. Day-of-week ``5L`` (or ``FRIL``): the last
  Friday of the month; ``1#2`` (or ``MON#2``): the second Monday (``#1`` to ``#5``). All of
  these may appear in lists.
* Day-of-month and day-of-week combine as in Vixie cron: when both are restricted (neither
  is ``*`` or ``?``) a day matches if either matches (``0 0 1 * MON`` = the 1st and every
  Monday); otherwise only the restricted one counts. A field such as ``*/2`` is restricted.
* A day that no chosen month has (``0 0 30 2 *``) is rejected: the rule could never fire.
* Macros: ``@yearly`` = ``@annually`` = ``0 0 1 1 *``, ``@monthly`` = ``0 0 1 * *``,
  ``@weekly`` = ``0 0 * * 0``, ``@daily`` = ``@midnight`` = ``0 0 * * *``,
  ``@hourly`` = ``0 * * * *``, ``@minutely`` = ``* * * * *``. ``@reboot`` is not supported
  (use a daemon rule). Macro names are case-insensitive.
* ``@every <duration>``: ``30s``, ``5m``, ``1h30m``, ``1h 30m``, ``2d`` (units s m h d, each
  at most once; 1s to 365d). Fires at the instants that are whole multiples
  of the interval since 1970-01-01T00:00:00Z, in every time zone, so every center computes
  the same instants (``@every 7d`` fires on Thursdays at 00:00 UTC).
* ``@at <ISO date-time>``: one fire, e.g. ``@at 2026-12-01T03:00:00`` in the rule's time zone,
  or with an explicit offset (``+05:30``) or ``Z``. Whole seconds, years 1970-9998.
* ``H`` (Jenkins' hash) in any cron field, seconds included: ``H`` is one value of the
  field, ``H(0-29)`` one value in that range, ``H/15`` every 15 from a start below 15
  (``7-59/15``), ``H(0-29)/10`` the same within the range; H items may stand in lists. The
  value comes from a SHA-256 of the rule's seed (its id) and the field's position, so every
  center computes the same times, and rules that all say ``H * * * *`` spread over the hour.
  An H day of the month stays within 1-28. A rule parsed with no seed (an unsaved rule's
  preview) uses seed 0; once saved, its id decides. Macros keep their fixed times.
* A rule is at most 128 characters; the time zone is any IANA name (``Europe/Berlin``).

Time zones and DST
------------------
Cron fields match the local wall-clock time of the rule's time zone. A wall time that does
not exist (the spring-forward gap) fires once, at the first instant after the gap: all of a
rule's times in the gap collapse into that one fire. A wall time that happens twice (fall
back) fires once, at its first occurrence; except that a rule whose hour field allows every
hour (``*``, so it runs at least hourly) fires on both passes, as Vixie cron does. Fires are
always strictly increasing. ``@every`` and ``@at`` with an offset ignore DST.

Instants are integers: microseconds since the Unix epoch (UTC). Fires fall on whole seconds.
A rule whose next fire would be after the year 9998 never fires again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import _CacheInfo, lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from center._cronfields import DAY_S, MAX_YEAR, CronFields, compile_fields
from center._cronhash import expand_hashes, has_hash
from center.errors import RuleError
from i18n.marks import N_

__all__ = ["MAX_RULE_CHARS", "Schedule", "parse_schedule", "schedule_cache_info"]

MAX_RULE_CHARS = 128  # the width of `crontab.rule`
_US = 1_000_000
_EPOCH = datetime(1970, 1, 1)
# Instants outside these bounds would take local times past what `datetime` can hold.
_MIN_S = int((datetime(2, 1, 1) - _EPOCH).total_seconds())
_MAX_S = int((datetime(MAX_YEAR, 12, 31) - _EPOCH).total_seconds())
# Enough for 100k rules with distinct (rule, zone) pairs to stay shared; a distinct rule
# costs ~1.5 KB (bench/bench_cron.py).
_CACHE_SIZE = 1 << 17
_MAX_EVERY_S = 365 * 86_400
_AT_YEARS = (1970, MAX_YEAR)
_UNIT_S = {"d": 86_400, "h": 3600, "m": 60, "s": 1}
_DURATION_PART = re.compile(r"\s*(\d+)([dhms])", re.ASCII)
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
    "@minutely": "* * * * *",
}
# Zones that are UTC under another name skip the local-time conversions entirely.
_UTC_KEYS = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu"})


class _Plan(Protocol):
    def next_s(self, start_s: int) -> int | None:
        """The first fire at or after `start_s` (whole seconds since the epoch), or None."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed rule in its time zone; equal when the rule text, the zone and the expansion of
    its H fields are equal (two rules with H whose hashes differ fire at different times)."""

    expr: str
    tz: str
    _plan: _Plan = field(compare=False, repr=False)
    expansion: str = ""  # the rule with its H items made plain; "" when it has none
    # Computed once: the planner and the rule checks hash a schedule several times per rule.
    _hash: int = field(default=0, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.expr, self.tz, self.expansion)))

    def __hash__(self) -> int:
        return self._hash

    def next_fire_us(self, after_us: int) -> int | None:
        """The first fire strictly after `after_us`; None when the rule never fires again."""
        start_s = max(after_us // _US + 1, _MIN_S)
        if start_s > _MAX_S:
            return None
        fire_s = self._plan.next_s(start_s)
        return None if fire_s is None else fire_s * _US

    def preview_us(self, after_us: int, count: int) -> list[int]:
        """The next `count` fires after `after_us` (fewer if the rule stops firing)."""
        fires: list[int] = []
        fire = after_us
        while len(fires) < count:
            following = self.next_fire_us(fire)
            if following is None:
                break
            fires.append(following)
            fire = following
        return fires


def parse_schedule(expr: str, tz: str = "UTC", *, seed: int | None = None) -> Schedule:
    """Parse a rule; raises RuleError(field="rule" or "timezone") saying what is wrong.

    `seed` (the rule's id) decides the values of H items; None is seed 0. Results are cached
    per (rule, zone), and per expansion for rules with H: rules sharing one share a plan.
    """
    text = expr.strip()
    if text.startswith("@") or not has_hash(text):
        return _parse_cached(text, tz)
    _check_length(text)
    expansion = expand_hashes(text, seed or 0)
    plain = _parse_cached(expansion, tz, None)
    return Schedule(text, tz, plain._plan, expansion)


def schedule_cache_info() -> _CacheInfo:
    """Hits, misses and size of the parse cache."""
    return _parse_cached.cache_info()


def _check_length(text: str) -> None:
    if not text:
        raise RuleError("rule", "is empty")
    if len(text) > MAX_RULE_CHARS:
        raise RuleError("rule", f"is longer than {MAX_RULE_CHARS} characters")


@lru_cache(maxsize=_CACHE_SIZE)
def _parse_cached(text: str, tz: str, max_chars: int | None = MAX_RULE_CHARS) -> Schedule:
    # max_chars None: an H expansion, whose source text was checked (`H` may become `37`)
    zone = _zone(tz)
    if max_chars is not None:
        _check_length(text)
    plan = _macro_plan(text, zone) if text.startswith("@") else _cron_plan(text, zone)
    return Schedule(text, tz, plan)


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # A folder of the zone database ('Europe') raises IsADirectoryError, and too long a
        # key another OSError, which the rules loop would otherwise take for a store outage.
        raise RuleError("timezone", f"unknown time zone {tz[:64]!r}") from None


def _cron_plan(text: str, zone: ZoneInfo) -> _CronPlan:
    fields = text.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    elif len(fields) != 6:
        raise RuleError(
            "rule",
            f"has {len(fields)} fields; expected 5 (minute hour day-of-month month day-of-week)"
            " or 6 (second minute hour day-of-month month day-of-week)",
        )
    sec, minute, hour, dom, month, dow = fields
    compiled = _compile_fields((sec, minute, hour, dom, month, dow))
    return _CronPlan(compiled, None if zone.key in _UTC_KEYS else zone)


@lru_cache(maxsize=_CACHE_SIZE)
def _compile_fields(texts: tuple[str, str, str, str, str, str]) -> CronFields:
    # cached apart from the zone: one expression used in many zones compiles once
    return compile_fields(texts)


def _macro_plan(text: str, zone: ZoneInfo) -> _Plan:
    name, *rest = text.split(maxsplit=1)
    name, argument = name.lower(), "".join(rest)
    if name in _MACROS and not argument:
        return _cron_plan(_MACROS[name], zone)
    if name == "@every":
        return _EveryPlan(_parse_duration_s(argument))
    if name == "@at":
        return _AtPlan(_parse_at_s(argument, zone))
    if name == "@reboot":
        raise RuleError("rule", "@reboot is not supported; use a daemon rule")
    if name in _MACROS:
        raise RuleError("rule", f"{name} takes no argument, got {argument!r}")
    raise RuleError("rule", f"unknown macro {name!r}")


def _parse_duration_s(text: str) -> int:
    """Seconds in `1h30m`-style text: units d h m s, each at most once."""
    bad = RuleError("rule", f"@every: {text!r} is not a duration like 30s, 5m, 1h30m or 2d")
    parts = []
    position = 0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            raise bad
        parts.append((int(match[1]), match[2]))
        position = match.end()
    units = [unit for _, unit in parts]
    if not parts or len(set(units)) != len(units):
        raise bad
    total_s = sum(count * _UNIT_S[unit] for count, unit in parts)
    if not 1 <= total_s <= _MAX_EVERY_S:
        raise RuleError("rule", f"@every: {text!r} is out of range 1s-365d")
    return total_s


def _parse_at_s(text: str, zone: ZoneInfo) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        reason = N_(f"@at: {text!r} is not an ISO date-time like 2026-12-01T03:00:00")
        raise RuleError("rule", reason) from None
    if moment.microsecond:
        raise RuleError("rule", f"@at: {text!r} has a fraction of a second; use whole seconds")
    if not _AT_YEARS[0] <= moment.year <= _AT_YEARS[1]:
        raise RuleError(
            "rule", f"@at: year {moment.year} is out of range {_AT_YEARS[0]}-{_AT_YEARS[1]}"
        )
    if moment.tzinfo is not None:
        return int(moment.timestamp())
    return _first_instant(zone, int((moment - _EPOCH).total_seconds()), 0)


@dataclass(frozen=True, slots=True)
class _EveryPlan:
    interval_s: int

    def next_s(self, start_s: int) -> int | None:
        return -(-start_s // self.interval_s) * self.interval_s


@dataclass(frozen=True, slots=True)
class _AtPlan:
    at_s: int

    def next_s(self, start_s: int) -> int | None:
        return self.at_s if self.at_s >= start_s else None


def _offset_s(delta: timedelta | None) -> int:
    assert delta is not None  # ZoneInfo always knows the offset of an aware datetime
    return delta.days * 86_400 + delta.seconds


def _first_instant(zone: ZoneInfo, wall: int, guess_s: int) -> int:
    """The instant of wall time `wall`: its first occurrence, or the end of the gap it is in.

    `guess_s` is the likely UTC offset; when right, one conversion settles it.
    """
    instant = wall - guess_s
    local = datetime.fromtimestamp(instant, zone)
    if _offset_s(local.utcoffset()) == guess_s and not local.fold:
        return instant
    naive = _EPOCH + timedelta(seconds=wall)
    # for a wall time in a gap, fold=0 gives the offset before it and fold=1 the one after
    before = _offset_s(naive.replace(tzinfo=zone).utcoffset())
    after = _offset_s(naive.replace(tzinfo=zone, fold=1).utcoffset())
    if before >= after:  # a unique wall time, or the first pass of a repeated one
        return wall - before
    return _transition_s(zone, wall - after, wall - before)


def _transition_s(zone: ZoneInfo, lo: int, hi: int) -> int:
    """The first instant in (lo, hi] whose UTC offset differs from that of `lo`."""
    base = datetime.fromtimestamp(lo, zone).utcoffset()
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == base:
            lo = middle
        else:
            hi = middle
    return hi


@dataclass(frozen=True, slots=True)
class _CronPlan:
    fields: CronFields
    zone: ZoneInfo | None  # None: UTC, where wall time and instants are the same numbers

    def next_s(self, start_s: int) -> int | None:
        if self.zone is None:
            return self.fields.next_wall(start_s)
        return self._next_zoned_s(self.zone, start_s - 1)

    def _next_zoned_s(self, zone: ZoneInfo, prev_s: int) -> int | None:
        """The first fire after instant `prev_s`, matching fields against local wall time."""
        local = datetime.fromtimestamp(prev_s, zone)
        offset = local.utcoffset()
        offset_s = _offset_s(offset)
        # searching from the wall time after prev's, not start's, keeps a gap right before
        # `start` in view: its wall times collapse onto `start` itself
        wall = self.fields.next_wall(prev_s + offset_s + 1)
        if wall is None:
            return None
        if local.fold:
            return self._after_second_pass(zone, prev_s, local, wall)
        fire_s = wall - offset_s
        found = datetime.fromtimestamp(fire_s, zone)
        # The usual case, settled without further zone look-ups: the wall time maps to fire_s
        # with prev's offset and is no repeat. A rule that fires in both passes also needs no
        # fall-back change between prev and fire_s; the same offset at both ends less than a
        # day apart rules one out, as tzdata has no two changes within two days since 1970.
        if (
            found.utcoffset() == offset
            and not found.fold
            and (fire_s - prev_s < DAY_S or not self.fields.every_hour)
        ):
            return fire_s
        if self.fields.every_hour:
            second_offset_s = _offset_s(local.replace(fold=1).utcoffset())
            if second_offset_s != offset_s:
                return self._in_first_pass(zone, prev_s, (offset_s, second_offset_s), wall)
        return _first_instant(zone, wall, offset_s)

    def _in_first_pass(
        self, zone: ZoneInfo, prev_s: int, offsets_s: tuple[int, int], wall: int
    ) -> int | None:
        """`prev_s` is in the first pass of a repeated hour, and every hour fires: the rule's
        times in the repeated span fire again in the second pass."""
        first_s, second_s = offsets_s
        change_s = _transition_s(zone, prev_s, prev_s + first_s - second_s)
        repeat_end = change_s + first_s  # the first wall time after the repeated span
        if wall < repeat_end:
            return wall - first_s
        again = self.fields.next_wall(change_s + second_s)
        if again is not None and again < repeat_end:
            return again - second_s
        return _first_instant(zone, wall, second_s)

    def _after_second_pass(
        self, zone: ZoneInfo, prev_s: int, local: datetime, wall: int
    ) -> int | None:
        """`prev_s` is in the second pass of a repeated hour."""
        second_s = _offset_s(local.utcoffset())
        first_s = _offset_s(local.replace(fold=0).utcoffset())
        change_s = _transition_s(zone, prev_s - (first_s - second_s), prev_s)
        repeat_end = change_s + first_s
        if wall < repeat_end:
            if self.fields.every_hour:
                return wall - second_s
            # an hour-restricted rule fired these wall times in the first pass already
            found = self.fields.next_wall(repeat_end)
            if found is None:
                return None
            wall = found
        return _first_instant(zone, wall, second_s)
