"""The timeline (Gantt) layout: runs as bars on lanes (one per agent or per rule) over a window.

Pure: runs and the window in, rectangles and ticks out, for an SVG template. A bar goes from
the run's start (its scheduled time while it has none) to its end (now while it runs); a run
that never started (skipped, missed) is a thin mark at its scheduled time. Times read in the
reader's zone; the words of the tooltips go through `words` (the default `str` keeps English).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from i18n.marks import N_
from i18n.zones import zone
from protocol import statuses

LABEL_W, PLOT_W = 200, 1000
LANE_H, LANE_GAP = 16, 4
MIN_BAR_W = 2.0
_MINUTE_US = 60_000_000
# Tick steps to choose from, in minutes: the first that gives at most MAX_TICKS ticks.
_STEPS_MIN = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)
MAX_TICKS = 12


@dataclass(frozen=True, slots=True)
class TimelineRun:
    id: int
    lane: int  # the agent's or the rule's id
    lane_label: str
    status: str
    sched_us: int
    start_us: int
    end_us: int
    title: str  # what the bar's tooltip names (the rule, or the agent)


@dataclass(frozen=True, slots=True)
class Bar:
    run_id: int
    status: str
    x: float
    y: float
    width: float
    tooltip: str


@dataclass(frozen=True, slots=True)
class Lane:
    label: str
    y: float


@dataclass(frozen=True, slots=True)
class Timeline:
    lanes: list[Lane]
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (x, label)
    width: int
    height: int
    label_w: int = LABEL_W
    lane_h: int = LANE_H


def bar_span(run: TimelineRun, now_us: int) -> tuple[int, int]:
    """(from, to) in µs of the run's bar before clipping to the window."""
    begin = run.start_us or run.sched_us
    if run.end_us:
        end = run.end_us
    elif run.status in statuses.ACTIVE:
        end = now_us
    else:
        end = begin  # never started or no end known: a mark
    return begin, max(end, begin)


def layout(
    runs: Sequence[TimelineRun],
    from_us: int,
    to_us: int,
    now_us: int,
    *,
    words: Callable[[str], str] = str,
    timezone: str = "UTC",
) -> Timeline:
    """Lanes sorted by label (those with a bar in the window); each run a bar clipped to
    [from_us, to_us)."""
    local = _Local(timezone)
    span = max(to_us - from_us, 1)
    shown = []
    for run in runs:
        begin, end = bar_span(run, now_us)
        if end >= from_us and begin < to_us:
            shown.append((run, begin, end))
    lanes: dict[int, str] = {}
    for run, _, _ in shown:
        lanes.setdefault(run.lane, run.lane_label)
    order = sorted(lanes, key=lambda lane: (lanes[lane], lane))
    ys = {lane: i * (LANE_H + LANE_GAP) for i, lane in enumerate(order)}
    bars = []
    for run, begin, end in shown:
        x0 = LABEL_W + PLOT_W * (max(begin, from_us) - from_us) / span
        x1 = LABEL_W + PLOT_W * (min(end, to_us) - from_us) / span
        width = max(min(max(x1 - x0, MIN_BAR_W), LABEL_W + PLOT_W - x0), 1.0)
        until = _end_text(run, end, local, words)
        tip = f"#{run.id} {run.title}: {words(run.status)}, {local.clock(begin)} → {until}"
        bars.append(Bar(run.id, run.status, round(x0, 1), ys[run.lane], round(width, 1), tip))
    return Timeline(
        lanes=[Lane(lanes[lane], ys[lane]) for lane in order],
        bars=bars,
        ticks=ticks(from_us, to_us, timezone),
        width=LABEL_W + PLOT_W,
        height=max(len(order), 1) * (LANE_H + LANE_GAP),
    )


def ticks(from_us: int, to_us: int, timezone: str = "UTC") -> list[tuple[float, str]]:
    """Round (local) times across the window, at most MAX_TICKS of them, with their x."""
    span = max(to_us - from_us, 1)
    step = next(
        (m * _MINUTE_US for m in _STEPS_MIN if span / (m * _MINUTE_US) <= MAX_TICKS),
        _STEPS_MIN[-1] * _MINUTE_US,
    )
    local = _Local(timezone)
    shift = local.offset_us(from_us)
    first = from_us + (-(from_us + shift)) % step
    long = span > 24 * 60 * _MINUTE_US
    return [
        (LABEL_W + PLOT_W * (t - from_us) / span, local.stamp(t, long))
        for t in range(first, to_us, step)
    ]


def _end_text(run: TimelineRun, end: int, local: _Local, words: Callable[[str], str]) -> str:
    if run.end_us:
        return local.clock(end)
    return words(N_("now")) if run.status in statuses.ACTIVE else "—"


class _Local:
    """Instants as wall-clock text of one zone. A zone's offset is looked up once per minute
    touched (zones change offset on whole minutes): thousands of tooltips, and strftime for
    each would be most of the layout's time."""

    def __init__(self, timezone: str) -> None:
        self.where: tzinfo = zone(timezone) or UTC
        self.offsets: dict[int, int] = {}

    def offset_us(self, us: int) -> int:
        minute = us // _MINUTE_US
        found = self.offsets.get(minute)
        if found is None:
            moment = datetime.fromtimestamp(minute * 60, UTC).astimezone(self.where)
            delta = moment.utcoffset()
            found = self.offsets[minute] = int(delta.total_seconds()) * 1_000_000 if delta else 0
        return found

    def clock(self, us: int) -> str:
        """HH:MM:SS by arithmetic."""
        s = (us + self.offset_us(us)) // 1_000_000 % 86_400
        return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"

    def stamp(self, us: int, long: bool) -> str:
        moment = datetime.fromtimestamp(us / 1e6, UTC).astimezone(self.where)
        return moment.strftime("%m-%d %H:%M" if long else "%H:%M")
