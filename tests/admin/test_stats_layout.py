"""Statistics' windows and trend, the trend chart and the timeline layout (pure, table-driven)."""

from __future__ import annotations

import pytest

from admin.stats import DAY_US, success_rate, trend, window_stats
from admin.timeline import LABEL_W, MIN_BAR_W, PLOT_W, TimelineRun, bar_span, layout, ticks
from admin.trend_chart import HEIGHT, format_ms, format_rate, trend_chart
from center.rollup import HOUR_US, RunFacts, Sums

NOW = 1_767_225_600_000_000 + 30 * 60 * 1_000_000  # 2026-01-01T00:30Z
MIN = 60_000_000


def sums(status: str = "success", n: int = 1, ms: int = 1000) -> Sums:
    s = Sums()
    for i in range(n):
        s.add(RunFacts(str(i), 1, 0, status, 1, 1 + ms * 1000), +1)
    return s


def test_windows_take_the_hours_within_them():
    """24h, 7d and 30d each sum the rollup hours since their start, the current hour included."""
    hour = NOW - NOW % HOUR_US
    rows = [
        (hour, sums(n=3)),
        (hour - 23 * HOUR_US, sums("failed")),
        (hour - 24 * HOUR_US, sums("skipped")),  # 7d, not 24h
        (hour - 20 * 24 * HOUR_US, sums("timeout")),  # 30d only
        (hour - 31 * 24 * HOUR_US, sums()),  # none
    ]
    got = {w.window: w for w in window_stats(rows, NOW)}
    assert [got[w].runs for w in ("24h", "7d", "30d")] == [4, 5, 6]
    assert got["24h"].by_status["failed"] == 1
    assert got["24h"].success_rate == pytest.approx(3 / 4)
    assert got["7d"].success_rate == pytest.approx(3 / 4)  # skipped runs were not meant to run
    assert got["30d"].success_rate == pytest.approx(3 / 5)
    assert got["24h"].duration_max_ms == 1000
    assert got["24h"].since_us == hour + HOUR_US - 24 * HOUR_US


@pytest.mark.parametrize(
    ("counts", "rate"),
    [({}, None), ({"skipped": 4}, None), ({"success": 1, "failed": 1}, 0.5), ({"success": 2}, 1.0)],
)
def test_success_rate(counts, rate):
    """Successes over the runs meant to run; None when there were none."""
    assert success_rate(counts) == rate


def test_trend_is_one_point_per_day_and_the_chart_scales_to_the_peak():
    """30 days, oldest first; bars reach the top on the busiest day, p95 on the highest p95."""
    today = NOW - NOW % DAY_US
    rows = [
        (today, sums(n=4, ms=2000)),
        (today - DAY_US, sums(n=2, ms=500)),
        (today, sums("failed")),
    ]
    points = trend(rows, NOW)
    assert len(points) == 30 and points[-1].day_us == today
    assert (points[-1].runs, points[-1].failed) == (5, 1)
    assert (points[-2].runs, points[0].runs) == (2, 0)
    chart = trend_chart(points)
    assert chart.peak_runs == 5 and chart.bars[-1].runs_y == 0
    assert chart.bars[-1].failed_y == pytest.approx(HEIGHT - HEIGHT / 5)
    assert chart.bars[0].runs_y == HEIGHT  # no runs: no bar
    assert len(chart.p95.split()) == 2  # only the days with durations have a point
    assert chart.top_ms == pytest.approx(2000)


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, "—"), (850, "850 ms"), (12_500, "12.5 s"), (192_000, "3.2 min"), (5_400_000, "1.5 h")],
)
def test_durations_for_people(ms, text):
    assert format_ms(ms) == text


def test_rates_for_people():
    assert (format_rate(None), format_rate(0.995)) == ("—", "99.5 %")


def trun(
    i: int, status: str, sched: int, start: int = 0, end: int = 0, lane: int = 1
) -> TimelineRun:
    return TimelineRun(i, lane, f"host-{lane}", status, sched, start, end, f"job {i}")


@pytest.mark.parametrize(
    ("r", "span"),
    [
        (trun(1, "success", 100, 110, 500), (110, 500)),  # start → end
        (trun(2, "running", 100, 120), (120, 1000)),  # start → now
        (trun(3, "dispatched", 100), (100, 1000)),  # sched → now
        (trun(4, "missed", 100), (100, 100)),  # a mark
        (trun(5, "lost", 100, 130), (130, 130)),  # no end known
    ],
)
def test_bar_spans(r, span):
    """A bar runs from the start (the schedule without one) to the end (now while it goes on)."""
    assert bar_span(r, now_us=1000) == span


def test_layout_clips_bars_to_the_window_and_sorts_lanes():
    """Bars are cut at the window's edges, runs outside it are left out, lanes sorted by label."""
    start, end = 0, 60 * MIN
    runs = [
        trun(1, "success", -10 * MIN, -10 * MIN, 30 * MIN, lane=2),  # began before the window
        trun(2, "success", 30 * MIN, 30 * MIN, 90 * MIN, lane=1),  # ends after it
        trun(3, "success", -30 * MIN, -30 * MIN, -20 * MIN, lane=3),  # wholly before: left out
        trun(4, "missed", 15 * MIN, lane=1),  # a thin mark
    ]
    t = layout(runs, start, end, now_us=120 * MIN)
    assert [lane.label for lane in t.lanes] == ["host-1", "host-2"]
    bars = {b.run_id: b for b in t.bars}
    assert set(bars) == {1, 2, 4}
    assert (bars[1].x, bars[1].width) == (LABEL_W, pytest.approx(PLOT_W / 2))
    assert bars[2].x == pytest.approx(LABEL_W + PLOT_W / 2)
    assert bars[2].x + bars[2].width == pytest.approx(LABEL_W + PLOT_W)
    assert bars[4].width == MIN_BAR_W
    assert bars[1].y != bars[2].y == bars[4].y
    assert "#2 job 2: success" in bars[2].tooltip


@pytest.mark.parametrize(
    ("span_min", "step_min"), [(60, 5), (6 * 60, 30), (24 * 60, 120), (7 * 24 * 60, 1440)]
)
def test_ticks_fall_on_round_times(span_min, step_min):
    """At most 12 ticks, on multiples of a round step."""
    got = ticks(0, span_min * MIN)
    assert len(got) <= 12
    xs = [x for x, _ in got]
    assert xs[0] == LABEL_W
    assert xs[1] - xs[0] == pytest.approx(PLOT_W * step_min / span_min)
