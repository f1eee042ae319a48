"""The preview of a rule's real fire times (H, calendar, jitter), from query values; pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from admin.errors import Invalid
from admin.rulefields import wall_times
from center.calendars import Calendar, find_calendar
from center.errors import RuleError
from center.timing import build_timing, timing_warning

MAX_COUNT = 100


@dataclass(frozen=True, slots=True)
class PreviewAsk:
    """What to preview: a rule's timing fields, from when, how many; a rule id (for H and
    jitter, and its group's calendars) or a group id (for its calendars) if known."""

    rule: str
    timezone: str = "UTC"
    calendar: str = ""
    calendar_mode: str = "only"
    calendar_fallback: str = "skip"
    jitter_s: int = 0
    start: str = ""  # ISO time; naive means in `timezone`; "" means now
    count: int = 10
    task_id: int | None = None
    gid: int | None = None


def preview(
    ask: PreviewAsk, gid: int | None, calendars: Mapping[tuple[int, str], Calendar], now_us: int
) -> dict[str, object]:
    """{"fires": wall-clock texts, "fires_us": instants, "warning": text}; Invalid names the
    field (rule, timezone, calendar, calendar_mode, calendar_fallback, jitter_s, from, count)."""
    if not 1 <= ask.count <= MAX_COUNT:
        raise Invalid("count", f"{ask.count} is out of range 1-{MAX_COUNT}")
    tz = ask.timezone or "UTC"
    try:
        calendar = find_calendar(ask.calendar, gid, calendars) if ask.calendar else None
        times = build_timing(
            ask.rule,
            tz,
            seed=ask.task_id,
            jitter_s=ask.jitter_s,
            calendar=calendar,
            mode=ask.calendar_mode,
            fallback=ask.calendar_fallback,
        )
    except RuleError as exc:
        raise Invalid(exc.field, exc.reason) from None
    after_us = _start_us(ask.start, tz) if ask.start else now_us
    # `from` itself may be a fire: the preview starts at it, not after it
    fires = times.preview_us(after_us - 1, ask.count)
    return {
        "fires": wall_times(fires, tz),
        "fires_us": fires,
        "warning": timing_warning(times, now_us),
    }


def _start_us(text: str, tz: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid("from", f"{text[:40]!r} is not an ISO time like 2026-09-28T00:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond
