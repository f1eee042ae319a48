"""Cron rules: next fires for tables of rules, zones and start times; bad rules; the cache."""

from __future__ import annotations

import itertools
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from center.cronexpr import parse_schedule, schedule_cache_info
from center.errors import RuleError

Case = tuple[str, str, str, list[str]]


def us(iso: str) -> int:
    """Microseconds since the epoch of an ISO date-time with an explicit offset."""
    moment = datetime.fromisoformat(iso)
    assert moment.tzinfo is not None, iso
    return int(moment.timestamp()) * 1_000_000


def iso(instant_us: int, tz: str) -> str:
    """An instant as local ISO text with its offset, the way the tables spell fires."""
    return datetime.fromtimestamp(instant_us / 1_000_000, ZoneInfo(tz)).isoformat()


def fires(expr: str, tz: str, after: str, count: int) -> list[str]:
    """The next `count` fires of a rule after `after`, as local ISO text."""
    return [iso(fire, tz) for fire in parse_schedule(expr, tz).preview_us(us(after), count)]


FIELDS: list[Case] = [
    (
        "*/15 * * * *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        [
            "2026-01-01T00:15:00+00:00",
            "2026-01-01T00:30:00+00:00",
            "2026-01-01T00:45:00+00:00",
            "2026-01-01T01:00:00+00:00",
        ],
    ),
    (
        "* * * * *",
        "UTC",
        "2026-01-01T00:00:30+00:00",
        ["2026-01-01T00:01:00+00:00", "2026-01-01T00:02:00+00:00"],
    ),
    (
        "5 4 * * *",
        "UTC",
        "2026-01-01T04:05:00+00:00",
        ["2026-01-02T04:05:00+00:00", "2026-01-03T04:05:00+00:00"],
    ),
    (
        "0 9-17/4 * * *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        [
            "2026-01-01T09:00:00+00:00",
            "2026-01-01T13:00:00+00:00",
            "2026-01-01T17:00:00+00:00",
            "2026-01-02T09:00:00+00:00",
        ],
    ),
    (
        "0,30 6-7 * * *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        [
            "2026-01-01T06:00:00+00:00",
            "2026-01-01T06:30:00+00:00",
            "2026-01-01T07:00:00+00:00",
            "2026-01-01T07:30:00+00:00",
            "2026-01-02T06:00:00+00:00",
        ],
    ),
    (
        "0 12 10/10 * *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        [
            "2026-01-10T12:00:00+00:00",
            "2026-01-20T12:00:00+00:00",
            "2026-01-30T12:00:00+00:00",
            "2026-02-10T12:00:00+00:00",
            "2026-02-20T12:00:00+00:00",
            "2026-03-10T12:00:00+00:00",
        ],
    ),
    (
        "0 22 * * MON-FRI",
        "UTC",
        "2026-01-01T00:00:00+00:00",  # 2026-01-01 is a Thursday
        ["2026-01-01T22:00:00+00:00", "2026-01-02T22:00:00+00:00", "2026-01-05T22:00:00+00:00"],
    ),
    (
        "30 8 * * sun",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-04T08:30:00+00:00", "2026-01-11T08:30:00+00:00"],
    ),
    (
        "0 0 * * 7",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"],
    ),
    (
        "0 0 1 JAN,jul *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-07-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"],
    ),
    (
        "0 0 1 */5 *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-06-01T00:00:00+00:00", "2026-11-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"],
    ),
    (
        "59 23 31 12 *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-12-31T23:59:00+00:00", "2027-12-31T23:59:00+00:00"],
    ),
    ("0  0   * * *", "UTC", "2026-01-01T00:00:00+00:00", ["2026-01-02T00:00:00+00:00"]),
]

SECONDS_FIRST: list[Case] = [
    (
        "*/10 * * * * *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-01T00:00:10+00:00", "2026-01-01T00:00:20+00:00", "2026-01-01T00:00:30+00:00"],
    ),
    (
        "0-5/2 * * * * *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-01T00:00:02+00:00", "2026-01-01T00:00:04+00:00", "2026-01-01T00:01:00+00:00"],
    ),
    (
        "30 0 0 * * *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-01T00:00:30+00:00", "2026-01-02T00:00:30+00:00"],
    ),
    (
        "15,45 */30 9 * * ?",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        [
            "2026-01-01T09:00:15+00:00",
            "2026-01-01T09:00:45+00:00",
            "2026-01-01T09:30:15+00:00",
            "2026-01-01T09:30:45+00:00",
            "2026-01-02T09:00:15+00:00",
        ],
    ),
    (
        "59 59 23 31 12 *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-12-31T23:59:59+00:00", "2027-12-31T23:59:59+00:00"],
    ),
    (
        "0 0 0 1 1 ?",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"],
    ),
]

MONTH_ENDS: list[Case] = [
    (
        "0 0 31 * *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        [
            "2026-01-31T00:00:00+00:00",
            "2026-03-31T00:00:00+00:00",
            "2026-05-31T00:00:00+00:00",
            "2026-07-31T00:00:00+00:00",
            "2026-08-31T00:00:00+00:00",
            "2026-10-31T00:00:00+00:00",
            "2026-12-31T00:00:00+00:00",
        ],
    ),
    (
        "0 0 30 * *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-30T00:00:00+00:00", "2026-03-30T00:00:00+00:00", "2026-04-30T00:00:00+00:00"],
    ),
    (
        "0 0 29 2 *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"],
    ),
    (
        "0 0 29 2 *",
        "UTC",
        "2096-03-01T00:00:00+00:00",  # 2100 is not a leap year
        ["2104-02-29T00:00:00+00:00"],
    ),
    (
        "0 0 L * *",
        "UTC",
        "2027-12-31T12:00:00+00:00",
        [
            "2028-01-31T00:00:00+00:00",
            "2028-02-29T00:00:00+00:00",
            "2028-03-31T00:00:00+00:00",
            "2028-04-30T00:00:00+00:00",
        ],
    ),
    (
        "0 0 L 2 *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-02-28T00:00:00+00:00", "2027-02-28T00:00:00+00:00", "2028-02-29T00:00:00+00:00"],
    ),
    (
        "0 0 15,L * *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        [
            "2026-01-15T00:00:00+00:00",
            "2026-01-31T00:00:00+00:00",
            "2026-02-15T00:00:00+00:00",
            "2026-02-28T00:00:00+00:00",
        ],
    ),
]

DAYS: list[Case] = [
    # both restricted: the 13th or a Friday
    (
        "0 0 13 * FRI",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        [
            "2026-01-02T00:00:00+00:00",
            "2026-01-09T00:00:00+00:00",
            "2026-01-13T00:00:00+00:00",
            "2026-01-16T00:00:00+00:00",
        ],
    ),
    (
        "0 0 1 * 1",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        [
            "2026-01-05T00:00:00+00:00",
            "2026-01-12T00:00:00+00:00",
            "2026-01-19T00:00:00+00:00",
            "2026-01-26T00:00:00+00:00",
            "2026-02-01T00:00:00+00:00",
            "2026-02-02T00:00:00+00:00",
        ],
    ),
    (
        "0 0 */10 * 0",
        "UTC",
        "2026-01-01T00:00:00+00:00",  # `*/10` counts as restricted
        [
            "2026-01-04T00:00:00+00:00",
            "2026-01-11T00:00:00+00:00",
            "2026-01-18T00:00:00+00:00",
            "2026-01-21T00:00:00+00:00",
            "2026-01-25T00:00:00+00:00",
            "2026-01-31T00:00:00+00:00",
            "2026-02-01T00:00:00+00:00",
        ],
    ),
    # one restricted: only it counts
    (
        "0 0 ? * 1",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-05T00:00:00+00:00", "2026-01-12T00:00:00+00:00"],
    ),
    (
        "0 0 1 * ?",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"],
    ),
    (
        "0 0 * * 1#2",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-12T00:00:00+00:00", "2026-02-09T00:00:00+00:00", "2026-03-09T00:00:00+00:00"],
    ),
    (
        "0 0 * * 5L",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00", "2026-03-27T00:00:00+00:00"],
    ),
    (
        "0 0 * * 7L",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-25T00:00:00+00:00", "2026-02-22T00:00:00+00:00", "2026-03-29T00:00:00+00:00"],
    ),
    (
        "0 0 * * FRI#5",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-30T00:00:00+00:00", "2026-05-29T00:00:00+00:00"],
    ),
    (
        "0 0 * * 0#1,6L",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        [
            "2026-01-04T00:00:00+00:00",
            "2026-01-31T00:00:00+00:00",
            "2026-02-01T00:00:00+00:00",
            "2026-02-28T00:00:00+00:00",
        ],
    ),
    (
        "0 0 L * mon#1",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        [
            "2026-01-05T00:00:00+00:00",
            "2026-01-31T00:00:00+00:00",
            "2026-02-02T00:00:00+00:00",
            "2026-02-28T00:00:00+00:00",
        ],
    ),
]

MACROS: list[Case] = [
    ("@yearly", "UTC", "2026-01-01T00:00:00+00:00", ["2027-01-01T00:00:00+00:00"]),
    ("@annually", "UTC", "2026-01-01T00:00:00+00:00", ["2027-01-01T00:00:00+00:00"]),
    ("@monthly", "UTC", "2026-01-01T00:00:00+00:00", ["2026-02-01T00:00:00+00:00"]),
    ("@weekly", "UTC", "2026-01-01T00:00:00+00:00", ["2026-01-04T00:00:00+00:00"]),
    ("@daily", "UTC", "2026-01-01T00:00:00+00:00", ["2026-01-02T00:00:00+00:00"]),
    ("@midnight", "UTC", "2026-01-01T00:00:00+00:00", ["2026-01-02T00:00:00+00:00"]),
    (
        "@HOURLY",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"],
    ),
    ("@minutely", "UTC", "2026-01-01T00:00:00+00:00", ["2026-01-01T00:01:00+00:00"]),
    ("@daily", "Asia/Kolkata", "2026-01-01T00:00:00+00:00", ["2026-01-02T00:00:00+05:30"]),
]

EVERY: list[Case] = [
    (
        "@every 30s",
        "UTC",
        "2026-01-01T00:00:10+00:00",
        ["2026-01-01T00:00:30+00:00", "2026-01-01T00:01:00+00:00"],
    ),
    (
        "@every 1h30m",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-01T01:30:00+00:00", "2026-01-01T03:00:00+00:00", "2026-01-01T04:30:00+00:00"],
    ),
    ("@every 1h 30m", "UTC", "2026-01-01T00:00:00+00:00", ["2026-01-01T01:30:00+00:00"]),
    # 660 s does not divide a day: fires line up with the epoch, not with midnight
    (
        "@every 11m",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-01T00:05:00+00:00", "2026-01-01T00:16:00+00:00"],
    ),
    (
        "@every 11m",
        "Asia/Kolkata",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-01T05:35:00+05:30", "2026-01-01T05:46:00+05:30"],
    ),
    ("@every 7d", "UTC", "2026-01-01T00:00:00+00:00", ["2026-01-08T00:00:00+00:00"]),
    (
        "@every 2d",
        "America/New_York",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-02T19:00:00-05:00", "2026-01-04T19:00:00-05:00"],
    ),
    (
        "@every 1m",
        "Europe/Berlin",
        "2026-03-29T01:58:30+01:00",  # DST does not matter
        ["2026-03-29T01:59:00+01:00", "2026-03-29T03:00:00+02:00"],
    ),
]

AT: list[Case] = [
    ("@at 2026-12-01T03:00:00", "UTC", "2026-01-01T00:00:00+00:00", ["2026-12-01T03:00:00+00:00"]),
    (
        "@at 2026-12-01T03:00:00",
        "Europe/Berlin",
        "2026-01-01T00:00:00+00:00",
        ["2026-12-01T03:00:00+01:00"],
    ),
    (
        "@at 2026-12-01T03:00:00Z",
        "Europe/Berlin",
        "2026-01-01T00:00:00+00:00",
        ["2026-12-01T04:00:00+01:00"],
    ),
    (
        "@at 2026-12-01T03:00:00+05:30",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2026-11-30T21:30:00+00:00"],
    ),
    ("@at 2026-12-01 03:00", "UTC", "2026-01-01T00:00:00+00:00", ["2026-12-01T03:00:00+00:00"]),
    ("@at 2026-12-01T03:00:00", "UTC", "2026-12-01T03:00:00+00:00", []),  # strictly after
    ("@at 2026-12-01T03:00:00", "UTC", "2027-01-01T00:00:00+00:00", []),
    (
        "@at 2026-03-29T02:30:00",
        "Europe/Berlin",
        "2026-01-01T00:00:00+00:00",  # in the gap
        ["2026-03-29T03:00:00+02:00"],
    ),
    (
        "@at 2026-10-25T02:30:00",
        "Europe/Berlin",
        "2026-01-01T00:00:00+00:00",  # twice: first
        ["2026-10-25T02:30:00+02:00"],
    ),
]

# Berlin 2026: 02:00 CET -> 03:00 CEST on 29 March; 03:00 CEST -> 02:00 CET on 25 October.
BERLIN: list[Case] = [
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T00:00:00+00:00",
        ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    ),
    (
        "0 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"],
    ),
    (
        "0,30 2-3 * * *",
        "Europe/Berlin",
        "2026-03-29T00:00:00+01:00",  # 02:00, 02:30, 03:00: once
        ["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:00:00+02:00"],
    ),
    (
        "*/20 * * * *",
        "Europe/Berlin",
        "2026-03-29T01:30:00+01:00",
        ["2026-03-29T01:40:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:20:00+02:00"],
    ),
    (
        "*/10 * * * * *",
        "Europe/Berlin",
        "2026-03-29T01:59:40+01:00",
        ["2026-03-29T01:59:50+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:00:10+02:00"],
    ),
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T00:00:00+00:00",
        ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
    ),
    ("30 2 * * *", "Europe/Berlin", "2026-10-25T02:30:00+02:00", ["2026-10-26T02:30:00+01:00"]),
    ("45 2 * * *", "Europe/Berlin", "2026-10-25T02:10:00+01:00", ["2026-10-26T02:45:00+01:00"]),
    (
        "15 1-3 * * *",
        "Europe/Berlin",
        "2026-10-25T00:00:00+02:00",
        ["2026-10-25T01:15:00+02:00", "2026-10-25T02:15:00+02:00", "2026-10-25T03:15:00+01:00"],
    ),
    (
        "*/20 * * * *",
        "Europe/Berlin",
        "2026-10-25T01:30:00+02:00",
        [
            "2026-10-25T01:40:00+02:00",
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:20:00+02:00",
            "2026-10-25T02:40:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:20:00+01:00",
            "2026-10-25T02:40:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ],
    ),
    (
        "@hourly",
        "Europe/Berlin",
        "2026-10-25T01:30:00+02:00",
        ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"],
    ),
    (
        "10 * * * *",
        "Europe/Berlin",
        "2026-10-25T02:30:00+02:00",  # an earlier wall time, again
        ["2026-10-25T02:10:00+01:00", "2026-10-25T03:10:00+01:00"],
    ),
    (
        "45 * * * *",
        "Europe/Berlin",
        "2026-10-25T02:10:00+01:00",
        ["2026-10-25T02:45:00+01:00", "2026-10-25T03:45:00+01:00"],
    ),
]

# New York 2026: 02:00 EST -> 03:00 EDT on 8 March; 02:00 EDT -> 01:00 EST on 1 November.
NEW_YORK: list[Case] = [
    (
        "30 2 * * *",
        "America/New_York",
        "2026-03-07T12:00:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        "*/30 * * * *",
        "America/New_York",
        "2026-03-08T01:00:00-05:00",
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"],
    ),
    (
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T12:00:00-04:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        "30 * * * *",
        "America/New_York",
        "2026-11-01T00:45:00-04:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-01T02:30:00-05:00"],
    ),
    (
        "0 0 * * *",
        "America/New_York",
        "2026-10-31T12:00:00-04:00",
        ["2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"],
    ),
]

# Kolkata is +05:30 all year; Lord Howe is +10:30, and +11:00 in summer: its clocks go from
# 02:00 to 02:30 on 4 October 2026, and from 02:00 back to 01:30 on 5 April 2026.
OFFSETS: list[Case] = [
    (
        "0 9 * * *",
        "Asia/Kolkata",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-01T09:00:00+05:30", "2026-01-02T09:00:00+05:30"],
    ),
    (
        "0,30 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-03T00:00:00+10:30",
        [
            "2026-10-03T02:00:00+10:30",
            "2026-10-03T02:30:00+10:30",
            "2026-10-04T02:30:00+11:00",
            "2026-10-05T02:00:00+11:00",
        ],
    ),
    (
        "15 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-03T12:00:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
    ),
    (
        "45 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-04T12:00:00+11:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
    ),
    (
        "*/15 * * * *",
        "Australia/Lord_Howe",
        "2026-04-05T01:20:00+11:00",
        [
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-05T02:00:00+10:30",
        ],
    ),
]

TABLE = (
    FIELDS + SECONDS_FIRST + MONTH_ENDS + DAYS + MACROS + EVERY + AT + BERLIN + NEW_YORK + OFFSETS
)


@pytest.mark.parametrize(("expr", "tz", "after", "expected"), TABLE)
def test_next_fires(expr: str, tz: str, after: str, expected: list[str]) -> None:
    """A rule's fires after a start time are exactly the expected local times, in order."""
    assert fires(expr, tz, after, len(expected)) == expected


@pytest.mark.parametrize(("expr", "tz", "after", "expected"), TABLE)
def test_fires_strictly_increase(expr: str, tz: str, after: str, expected: list[str]) -> None:
    """Consecutive fires of every table rule strictly increase over many fires."""
    series = parse_schedule(expr, tz).preview_us(us(after), 200)
    assert all(a < b for a, b in itertools.pairwise(series))


@pytest.mark.parametrize("offset_us", [-1, 0, 1, 999_999])
def test_fire_is_strictly_after_any_microsecond(offset_us: int) -> None:
    """`after_us` may be any microsecond: the next fire is the first whole second after it."""
    schedule = parse_schedule("*/10 * * * * *")
    fire = us("2026-01-01T00:00:10+00:00")
    expected = fire if offset_us < 0 else fire + 10_000_000
    assert schedule.next_fire_us(fire + offset_us) == expected


def test_at_in_the_past_never_fires() -> None:
    """A one-off rule returns None once its instant has passed."""
    schedule = parse_schedule("@at 2026-12-01T03:00:00")
    assert schedule.next_fire_us(us("2026-12-01T03:00:00+00:00") - 1) is not None
    assert schedule.next_fire_us(us("2026-12-01T03:00:00+00:00")) is None
    assert schedule.preview_us(us("2030-01-01T00:00:00+00:00"), 5) == []


def test_rare_rule_searches_far_ahead() -> None:
    """The fifth Monday of February (Feb 29 on a Monday) is found decades ahead."""
    assert fires("0 0 * 2 1#5", "UTC", "2016-03-01T00:00:00+00:00", 2) == [
        "2044-02-29T00:00:00+00:00",
        "2072-02-29T00:00:00+00:00",
    ]


def test_search_ends_at_year_9998() -> None:
    """Past the last searchable year a rule reports no further fire instead of failing."""
    assert fires("0 0 29 2 *", "Pacific/Kiritimati", "9996-03-01T00:00:00+00:00", 2) == []
    assert parse_schedule("* * * * *").next_fire_us(us("9999-12-31T00:00:00+00:00")) is None


BAD: list[tuple[str, str, str, str]] = [
    ("", "UTC", "rule", "is empty"),
    ("   ", "UTC", "rule", "is empty"),
    ("* * * *", "UTC", "rule", "has 4 fields; expected 5"),
    ("* * * * * * *", "UTC", "rule", "has 7 fields; expected 5"),
    ("61 * * * *", "UTC", "rule", "minute field: 61 is out of range 0-59"),
    ("60 * * * * *", "UTC", "rule", "second field: 60 is out of range 0-59"),
    ("* 24 * * *", "UTC", "rule", "hour field: 24 is out of range 0-23"),
    ("* * 0 * *", "UTC", "rule", "day-of-month field: 0 is out of range 1-31"),
    ("* * 32 * *", "UTC", "rule", "day-of-month field: 32 is out of range 1-31"),
    ("* * * 13 *", "UTC", "rule", "month field: 13 is out of range 1-12"),
    ("* * * * 8", "UTC", "rule", "day-of-week field: 8 is out of range 0-7"),
    ("5-1 * * * *", "UTC", "rule", "minute field: range '5-1' is reversed"),
    ("* * * * FRI-MON", "UTC", "rule", "day-of-week field: range 'FRI-MON' is reversed"),
    ("*/0 * * * *", "UTC", "rule", "minute field: step 0 in '*/0' is out of range 1-59"),
    ("*/60 * * * *", "UTC", "rule", "minute field: step 60 in '*/60' is out of range 1-59"),
    ("* * * * */7", "UTC", "rule", "day-of-week field: step 7 in '*/7' is out of range 1-6"),
    ("*/ * * * *", "UTC", "rule", "minute field: step '' in '*/' is not a number"),
    ("1, * * * *", "UTC", "rule", "minute field: empty item in list '1,'"),
    (",1 * * * *", "UTC", "rule", "minute field: empty item in list ',1'"),
    ("1,,2 * * * *", "UTC", "rule", "minute field: empty item in list '1,,2'"),
    ("a * * * *", "UTC", "rule", "minute field: 'a' is not a number"),
    ("1.5 * * * *", "UTC", "rule", "minute field: '1.5' is not a number"),
    ("-1 * * * *", "UTC", "rule", "minute field: '' is not a number"),
    ("* * * FOO *", "UTC", "rule", "month field: 'FOO' is not a number or a name"),
    ("* * * * MONDAY", "UTC", "rule", "day-of-week field: 'MONDAY' is not a number or a name"),
    ("* * ?,1 * *", "UTC", "rule", "day-of-month field: '?' must stand alone"),
    ("* * * * L", "UTC", "rule", "day-of-week field: 'L' needs a weekday"),
    ("* * * * 1#6", "UTC", "rule", "day-of-week field: '6' in '1#6' is not a week of the month"),
    ("* * * * 1#0", "UTC", "rule", "day-of-week field: '0' in '1#0' is not a week of the month"),
    ("* * * * 9#1", "UTC", "rule", "day-of-week field: 9 is out of range 0-7"),
    ("* * L5 * *", "UTC", "rule", "day-of-month field: 'L5' is not a number"),
    ("0 0 30 2 *", "UTC", "rule", "day-of-month field: 30 never occurs in month 2"),
    ("0 0 31 4,6,9,11 *", "UTC", "rule", "day-of-month field: 31 never occurs in month 4,6,9,11"),
    ("0 0 31 FEB *", "UTC", "rule", "day-of-month field: 31 never occurs in month FEB"),
    ("@reboot", "UTC", "rule", "@reboot is not supported; use a daemon rule"),
    ("@fortnightly", "UTC", "rule", "unknown macro '@fortnightly'"),
    ("@daily 5", "UTC", "rule", "@daily takes no argument"),
    ("@every", "UTC", "rule", "@every: '' is not a duration"),
    ("@every 1.5h", "UTC", "rule", "@every: '1.5h' is not a duration"),
    ("@every 5ms", "UTC", "rule", "@every: '5ms' is not a duration"),
    ("@every 1h1h", "UTC", "rule", "@every: '1h1h' is not a duration"),
    ("@every -5m", "UTC", "rule", "@every: '-5m' is not a duration"),
    ("@every 0s", "UTC", "rule", "@every: '0s' is out of range 1s-365d"),
    ("@every 366d", "UTC", "rule", "@every: '366d' is out of range 1s-365d"),
    ("@at", "UTC", "rule", "@at: '' is not an ISO date-time"),
    ("@at tomorrow", "UTC", "rule", "@at: 'tomorrow' is not an ISO date-time"),
    ("@at 2026-12-01T03:00:00.5", "UTC", "rule", "has a fraction of a second"),
    ("@at 1969-12-31T23:59:59", "UTC", "rule", "@at: year 1969 is out of range 1970-9998"),
    ("@at 9999-01-01T00:00:00", "UTC", "rule", "@at: year 9999 is out of range 1970-9998"),
    ("0 " * 70, "UTC", "rule", "is longer than 128 characters"),
    ("* * * * *", "Mars/Base", "timezone", "unknown time zone 'Mars/Base'"),
    ("* * * * *", "", "timezone", "unknown time zone ''"),
    ("* * * * *", "../etc/passwd", "timezone", "unknown time zone '../etc/passwd'"),
    ("* * * * *", "Europe", "timezone", "unknown time zone 'Europe'"),  # a folder of the database
    ("* * * * *", "A" * 300, "timezone", "unknown time zone 'AAAA"),  # too long a file name
]


@pytest.mark.parametrize(("expr", "tz", "field", "reason"), BAD)
def test_bad_rule_names_field_and_reason(expr: str, tz: str, field: str, reason: str) -> None:
    """A bad rule or zone raises RuleError naming the field, with a reason naming the value."""
    with pytest.raises(RuleError) as caught:
        parse_schedule(expr, tz)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_shared_expression_shares_one_schedule() -> None:
    """Parsing the same rule and zone again returns the cached Schedule, not a new one."""
    first = parse_schedule("7 7 * * *", "Europe/Berlin")
    hits = schedule_cache_info().hits
    assert parse_schedule(" 7 7 * * * ", "Europe/Berlin") is first
    assert schedule_cache_info().hits == hits + 1
    assert first == parse_schedule("7 7 * * *", "Europe/Berlin")
    assert first != parse_schedule("7 7 * * *", "UTC")
    assert len({first, parse_schedule("7 7 * * *", "Europe/Berlin")}) == 1


def test_schedule_keeps_rule_text_and_zone() -> None:
    """A Schedule exposes the stripped rule text and the zone name it was parsed with."""
    schedule = parse_schedule("  @every 5m ", "Asia/Kolkata")
    assert (schedule.expr, schedule.tz) == ("@every 5m", "Asia/Kolkata")
    assert "_plan" not in repr(schedule)


def test_cron_module_is_pure() -> None:
    """Importing the cron maths pulls in no asyncio, no database driver and no network code."""
    code = (
        "import sys, center.cronexpr; "
        "bad = {'asyncio', 'sqlalchemy', 'socket', 'structlog'} & set(sys.modules); "
        "print(sorted(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == "[]"


FIELD_TOKENS = ["*", "?", "0", "5", "23", "29", "31", "1-5", "*/7", "10/20", "0,30", "L"]
FIELD_TOKENS += ["5L", "1#5", "MON-FRI", "FEB", "2", "12", "0-7", "7", "x"]
CRONISH = st.one_of(
    st.text(alphabet="0123456789*/-,?#LW@ ataeveryhdmsJANMONfri:+TZ\t", max_size=40),
    st.lists(st.sampled_from(FIELD_TOKENS), min_size=5, max_size=6).map(" ".join),
)


@settings(max_examples=400, deadline=None)
@given(
    text=CRONISH,
    tz=st.sampled_from(["UTC", "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Kiritimati"]),
    after_us=st.one_of(
        st.integers(min_value=0, max_value=4_102_444_800_000_000),  # 1970-2100
        st.integers(min_value=-(2**62), max_value=2**62),
    ),
)
def test_any_text_parses_or_raises_rule_error(text: str, tz: str, after_us: int) -> None:
    """Any text either raises RuleError or gives a schedule whose next fire is later or None."""
    try:
        schedule = parse_schedule(text, tz)
    except RuleError as error:
        assert error.field == "rule"
        return
    fire = schedule.next_fire_us(after_us)
    assert fire is None or fire > after_us
