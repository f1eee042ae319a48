"""Time zones as people choose them (pure): is a name one, and an instant as wall-clock text."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@functools.lru_cache(maxsize=256)
def zone(name: str) -> tzinfo | None:
    """The zone of an IANA name; None for an unknown or malformed one."""
    if not name or name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def known_zone(name: str) -> bool:
    return zone(name) is not None


def wall_clock(us: int, name: str, with_zone: bool = False) -> str:
    """An instant (µs since the epoch) as `YYYY-MM-DD HH:MM:SS` in the named zone (UTC if it
    is unknown), with the zone's name when asked (abbreviations like CST are ambiguous)."""
    where = zone(name)
    if where is None:
        where, name = UTC, "UTC"
    text = datetime.fromtimestamp(us / 1e6, UTC).astimezone(where).strftime("%Y-%m-%d %H:%M:%S")
    return f"{text} {name or 'UTC'}" if with_zone else text
