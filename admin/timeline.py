"""The timeline (Gantt) layout: runs as bars on lanes (one per agent or per rule) over a window.

Pure: runs and the window in, rectangles and ticks out, for an SVG template. A bar goes from
the run's start (its scheduled time while it has none) to its end (now while it runs); a run
that never started (skipped, missed) is a thin mark at its scheduled time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

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


def layout(runs: Sequence[TimelineRun], from_us: int, to_us: int, now_us: int) -> Timeline:
    """Lanes sorted by label (those with a bar in the window); each run a bar clipped to
    [from_us, to_us)."""
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
        tip = f"#{run.id} {run.title}: {run.status}, {_clock(begin)} → {_end_text(run, end)}"
        bars.append(Bar(run.id, run.status, round(x0, 1), ys[run.lane], round(width, 1), tip))
    return Timeline(
        lanes=[Lane(lanes[lane], ys[lane]) for lane in order],
        bars=bars,
        ticks=ticks(from_us, to_us),
        width=LABEL_W + PLOT_W,
        height=max(len(order), 1) * (LANE_H + LANE_GAP),
    )


def ticks(from_us: int, to_us: int) -> list[tuple[float, str]]:
    """Round times across the window, at most MAX_TICKS of them, with their x."""
    span = max(to_us - from_us, 1)
    step = next(
        (m * _MINUTE_US for m in _STEPS_MIN if span / (m * _MINUTE_US) <= MAX_TICKS),
        _STEPS_MIN[-1] * _MINUTE_US,
    )
    first = from_us + (-from_us) % step
    long = span > 24 * 60 * _MINUTE_US
    return [
        (LABEL_W + PLOT_W * (t - from_us) / span, _stamp(t, long))
        for t in range(first, to_us, step)
    ]


def _end_text(run: TimelineRun, end: int) -> str:
    if run.end_us:
        return _clock(end)
    return "now" if run.status in statuses.ACTIVE else "—"


def _clock(us: int) -> str:
    """HH:MM:SS (UTC) by arithmetic: thousands of tooltips, strftime would be most of the
    layout's time."""
    s = us // 1_000_000 % 86_400
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _stamp(us: int, long: bool) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%m-%d %H:%M" if long else "%H:%M")
