"""Statistics of a rule or a group from its hourly rollups: windows, rates, percentiles, trend.

Pure: rollup sums in, figures out. The success rate is successes over the runs that were
meant to run (every final status but `skipped`, which the overlap policy chose); durations
and lateness come from the runs that started and ended on their own agent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from center.rollup import COUNTED, HOUR_US, Sums, hour_of, percentile_ms
from i18n.marks import N_
from protocol import statuses

DAY_US = 24 * HOUR_US
# (name, hours): the windows every statistics answer gives, the current hour included. The
# names are keys of the API's answer; pages show them translated.
WINDOWS: tuple[tuple[str, int], ...] = ((N_("24h"), 24), (N_("7d"), 7 * 24), (N_("30d"), 30 * 24))
TREND_DAYS = 30


@dataclass(frozen=True, slots=True)
class WindowStats:
    window: str
    since_us: int
    runs: int
    by_status: dict[str, int]
    success_rate: float | None  # 0..1; None without a run that was meant to run
    duration_p50_ms: float | None
    duration_p95_ms: float | None
    duration_max_ms: int | None
    lateness_p95_ms: float | None


@dataclass(frozen=True, slots=True)
class TrendPoint:
    day_us: int  # the first µs of the (UTC) day
    runs: int
    failed: int  # runs that were meant to run and did not succeed
    duration_p50_ms: float | None
    duration_p95_ms: float | None


def success_rate(counts: dict[str, int]) -> float | None:
    meant = sum(n for s, n in counts.items() if s != statuses.SKIPPED)
    return counts.get(statuses.SUCCESS, 0) / meant if meant > 0 else None


def _total(rows: Iterable[tuple[int, Sums]], since_us: int, until_us: int) -> Sums:
    total = Sums()
    for hour_us, sums in rows:
        if since_us <= hour_us < until_us:
            total.merge(sums)
    return total


def window_stats(rows: list[tuple[int, Sums]], now_us: int) -> list[WindowStats]:
    """One entry per window of WINDOWS, from (hour_us, sums) rollup rows."""
    end = hour_of(now_us) + HOUR_US
    out = []
    for name, hours in WINDOWS:
        since = end - hours * HOUR_US
        out.append(_stats(name, since, _total(rows, since, end)))
    return out


def _stats(name: str, since_us: int, s: Sums) -> WindowStats:
    counts = {status: s.counts.get(status, 0) for status in COUNTED}
    dur = s.duration
    return WindowStats(
        window=name,
        since_us=since_us,
        runs=sum(counts.values()),
        by_status=counts,
        success_rate=success_rate(counts),
        duration_p50_ms=percentile_ms(dur.hist, 0.5, dur.max_ms),
        duration_p95_ms=percentile_ms(dur.hist, 0.95, dur.max_ms),
        duration_max_ms=dur.max_ms if dur.n > 0 else None,
        lateness_p95_ms=percentile_ms(s.lateness.hist, 0.95, s.lateness.max_ms),
    )


def trend(rows: list[tuple[int, Sums]], now_us: int, days: int = TREND_DAYS) -> list[TrendPoint]:
    """Per UTC day, the last `days` days up to today: runs, failures, duration p50/p95."""
    today = now_us - now_us % DAY_US
    first = today - (days - 1) * DAY_US
    per_day = {first + i * DAY_US: Sums() for i in range(days)}
    for hour_us, sums in rows:
        day = hour_us - hour_us % DAY_US
        if day in per_day:
            per_day[day].merge(sums)
    points = []
    for day, s in per_day.items():
        meant = sum(n for st, n in s.counts.items() if st != statuses.SKIPPED)
        points.append(
            TrendPoint(
                day_us=day,
                runs=s.runs,
                failed=meant - s.counts.get(statuses.SUCCESS, 0),
                duration_p50_ms=percentile_ms(s.duration.hist, 0.5, s.duration.max_ms),
                duration_p95_ms=percentile_ms(s.duration.hist, 0.95, s.duration.max_ms),
            )
        )
    return points
