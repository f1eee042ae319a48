"""The dashboard's runs-per-hour chart as plain numbers for an SVG template (no JavaScript).

Pure: counts in, rectangles out; the words drawn (statuses in tooltips) go through `words`,
and hours are labelled in the reader's time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from i18n.zones import zone
from protocol import statuses

HOURS = 24
WIDTH, HEIGHT = 1200, 180
BAR_GAP = 4
# Bottom to top; the order of the legend too.
ORDER = (
    statuses.SUCCESS,
    statuses.FAILED,
    statuses.TIMEOUT,
    statuses.KILLED,
    statuses.LOST,
    statuses.MISSED,
    statuses.SKIPPED,
    statuses.RUNNING,
    statuses.DISPATCHED,
    statuses.PLANNED,
)


@dataclass(frozen=True, slots=True)
class Segment:
    status: str
    count: int
    x: float
    y: float
    width: float
    height: float
    label: str  # the tooltip


@dataclass(frozen=True, slots=True)
class Chart:
    segments: list[Segment]
    totals: dict[str, int]
    peak: int
    hour_labels: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT


def runs_chart(
    counts: dict[tuple[int, str], int],
    now_hour: int,
    words: Callable[[str], str] = str,
    timezone: str = "UTC",
) -> Chart:
    """Stacked bars of runs by status for the 24 hours up to `now_hour` (hours since epoch);
    `words` translates a text (the default `str` keeps the English), hours read in `timezone`."""
    first = now_hour - HOURS + 1
    per_hour = [
        {s: counts.get((first + i, s), 0) for s in ORDER if counts.get((first + i, s))}
        for i in range(HOURS)
    ]
    peak = max([sum(h.values()) for h in per_hour] + [1])
    bar = WIDTH / HOURS
    segments: list[Segment] = []
    for i, hour in enumerate(per_hour):
        y = float(HEIGHT)
        stamp = _hour_text(first + i, timezone)
        for status in ORDER:
            count = hour.get(status, 0)
            if not count:
                continue
            height = HEIGHT * count / peak
            y -= height
            label = f"{stamp}: {count} {words(status)}"
            segments.append(Segment(status, count, i * bar, y, bar - BAR_GAP, height, label))
    totals = {s: sum(h.get(s, 0) for h in per_hour) for s in ORDER}
    labels = [(i * bar, _hour_text(first + i, timezone)[-5:]) for i in range(0, HOURS, 3)]
    return Chart(segments, {s: n for s, n in totals.items() if n}, peak, labels)


def _hour_text(hour: int, timezone: str) -> str:
    """The hour's start as local wall time (a zone half an hour off UTC shows HH:30)."""
    moment = datetime.fromtimestamp(hour * 3600, UTC).astimezone(zone(timezone) or UTC)
    return moment.strftime("%Y-%m-%d %H:%M")
