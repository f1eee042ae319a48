"""The one clock of run times: wall-clock microseconds since the epoch, UTC."""

from __future__ import annotations

import time


def now_us() -> int:
    """Wall-clock microseconds since the epoch, the unit of every run time."""
    return time.time_ns() // 1000


def now_ms() -> int:
    return time.time_ns() // 1_000_000
