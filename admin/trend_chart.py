"""The statistics' duration trend as plain numbers for an SVG template (no JavaScript).

Per day: a bar of runs (failures on top, in their colour) scaled to the busiest day, and two
lines, duration p50 and p95, on their own axis scaled to the highest p95. Pure: the words of
the tooltips go through `words` (the reader's gettext; the default `str` keeps the English).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from admin.stats import TrendPoint
from i18n.marks import N_

WIDTH, HEIGHT = 1200, 160
BAR_GAP = 3
_TOOLTIP = N_("{day}: {runs} runs, {failed} not successful, p50 {p50}, p95 {p95}")


@dataclass(frozen=True, slots=True)
class DayBar:
    x: float
    width: float
    runs_y: float  # top of the runs bar (the bar reaches HEIGHT)
    failed_y: float  # top of the failures part (failed_y ≥ runs_y)
    label: str  # the tooltip


@dataclass(frozen=True, slots=True)
class TrendChart:
    bars: list[DayBar]
    p50: str  # SVG polyline points "x,y x,y"; "" when no run had a duration
    p95: str
    top_ms: float  # the duration at the top of the chart
    peak_runs: int
    day_labels: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT


def format_ms(ms: float | None) -> str:
    """A duration for people: 850 ms, 12.5 s, 3.2 min, 1.5 h."""
    if ms is None:
        return "—"
    for unit, size in (("h", 3_600_000.0), ("min", 60_000.0), ("s", 1000.0)):
        if ms >= size:
            return f"{ms / size:.1f} {unit}"
    return f"{ms:.0f} ms"


def trend_chart(points: list[TrendPoint], words: Callable[[str], str] = str) -> TrendChart:
    days = max(len(points), 1)
    slot = WIDTH / days
    peak = max([p.runs for p in points] + [1])
    top = max([p.duration_p95_ms or 0.0 for p in points] + [1.0])
    bars = []
    for i, p in enumerate(points):
        runs_h = HEIGHT * p.runs / peak
        failed_h = HEIGHT * max(p.failed, 0) / peak
        day = _day_text(p.day_us)
        tooltip = words(_TOOLTIP).format(
            day=day,
            runs=p.runs,
            failed=p.failed,
            p50=format_ms(p.duration_p50_ms),
            p95=format_ms(p.duration_p95_ms),
        )
        bars.append(DayBar(i * slot, slot - BAR_GAP, HEIGHT - runs_h, HEIGHT - failed_h, tooltip))
    labels = [(i * slot, _day_text(p.day_us)[5:]) for i, p in enumerate(points) if i % 5 == 0]
    return TrendChart(
        bars=bars,
        p50=_line([p.duration_p50_ms for p in points], slot, top),
        p95=_line([p.duration_p95_ms for p in points], slot, top),
        top_ms=top,
        peak_runs=peak,
        day_labels=labels,
    )


def _line(values: list[float | None], slot: float, top: float) -> str:
    """Points at the middle of each day's slot; days without a value are left out."""
    return " ".join(
        f"{i * slot + slot / 2:.1f},{HEIGHT - HEIGHT * v / top:.1f}"
        for i, v in enumerate(values)
        if v is not None
    )


def _day_text(day_us: int) -> str:
    return datetime.fromtimestamp(day_us / 1e6, UTC).strftime("%Y-%m-%d")


def format_rate(rate: float | None) -> str:
    """A success rate for people: 99.5 %."""
    return "—" if rate is None else f"{rate * 100:.1f} %"
