"""Statistics of rules and groups (from rollups), the rules list's outcome strips, the timeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin.actor import Actor
from admin.errors import Invalid, NotFound
from admin.permissions import Action
from admin.queries import groups as group_queries
from admin.queries import rules as rule_queries
from admin.queries import stats as queries
from admin.stats import DAY_US, TREND_DAYS, WINDOWS, TrendPoint, trend, window_stats
from admin.timeline import Timeline, TimelineRun, layout
from admin.trend_chart import TrendChart, trend_chart
from center.rollup import HOUR_US, hour_of
from protocol.clock import now_us
from protocol.vocabulary import RuleStatus

RATE_DAYS = 7  # the rules list's success rate
STRIP_RUNS = 20
# Bars drawn at most: 2,000 keep the page within 300 ms (query, layout and SVG) on a busy
# fleet, where an hour may hold 15,000 runs; a rule or an agent narrows the window's runs.
TIMELINE_MAX_BARS = 2_000
# A finished run shows on the timeline if it was scheduled up to this long before the window.
TIMELINE_LOOKBACK_US = 3600 * 1_000_000
TIMELINE_MAX_SPAN_US = 7 * DAY_US
LANES = ("agent", "rule")


def _since(now: int) -> int:
    longest = max(max(h for _, h in WINDOWS) * HOUR_US, TREND_DAYS * DAY_US)
    return hour_of(now) + HOUR_US - longest


def _answer(rows: list[Any], now: int) -> dict[str, Any]:
    return {
        "windows": [asdict(w) for w in window_stats(rows, now)],
        "trend": [asdict(p) for p in trend(rows, now)],
    }


async def rule_stats(engine: AsyncEngine, actor: Actor, task_id: int) -> dict[str, Any]:
    """Runs by status, success rate, duration p50/p95/max and lateness p95 over each window,
    and the daily trend, of one rule."""
    now = now_us()
    async with engine.connect() as conn:
        row = await rule_queries.rule_by_id(conn, task_id)
        if row is None or row["status"] == RuleStatus.DELETED:
            raise NotFound("no such rule")
        actor.require(Action.VIEW, row["gid"], "rule")
        rows = await queries.rollup_rows(conn, [task_id], _since(now))
    return {"task_id": task_id, **_answer(rows, now)}


async def group_stats(engine: AsyncEngine, actor: Actor, gid: int) -> dict[str, Any]:
    """The same over every rule of a group (removed rules' runs included: they ran)."""
    now = now_us()
    actor.require(Action.VIEW, gid, "group")
    async with engine.connect() as conn:
        if await group_queries.group_by_id(conn, gid) is None:
            raise NotFound("no such group")
        rows = await queries.rollup_rows(conn, queries.rules_of_group(gid), _since(now))
    return {"gid": gid, **_answer(rows, now)}


def chart(stats: dict[str, Any], words: Callable[[str], str] = str) -> TrendChart:
    """The duration trend of a statistics answer, laid out for the page's SVG (its tooltips
    through the reader's `words`)."""
    return trend_chart([TrendPoint(**p) for p in stats["trend"]], words)


async def outcomes(conn: AsyncConnection, task_ids: list[int]) -> dict[int, dict[str, Any]]:
    """task_id → {"strip": its last runs (oldest first), "rate": success rate over 7 days}."""
    now = now_us()
    strips = await queries.last_outcomes(conn, task_ids, now, STRIP_RUNS)
    counts = await queries.success_counts(conn, task_ids, hour_of(now) - RATE_DAYS * DAY_US)
    out = {}
    for task_id in task_ids:
        ok, meant = counts.get(task_id, (0, 0))
        out[task_id] = {"strip": strips.get(task_id, []), "rate": ok / meant if meant else None}
    return out


async def rule_outcomes(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    """Add `strip` and `rate` to each listed rule (rows the actor already sees)."""
    async with engine.connect() as conn:
        found = await outcomes(conn, [int(r["id"]) for r in rows])
    for row in rows:
        row.update(found.get(int(row["id"]), {"strip": [], "rate": None}))


def window_of(from_us: int | None, to_us: int | None, hours: float, now: int) -> tuple[int, int]:
    """The timeline's [from, to): given bounds, else the last `hours` up to now."""
    if hours <= 0 or hours * 3600 * 1_000_000 > TIMELINE_MAX_SPAN_US:
        raise Invalid("hours", "must be more than 0 and at most 168")
    end = to_us if to_us is not None else now
    start = from_us if from_us is not None else end - int(hours * 3600 * 1_000_000)
    if start >= end:
        raise Invalid("from", "must be before `to`")
    if end - start > TIMELINE_MAX_SPAN_US:
        raise Invalid("from", "the window may be at most 7 days long")
    return start, end


async def timeline(
    engine: AsyncEngine,
    actor: Actor,
    window: tuple[int, int],
    lane: str,
    *,
    task_id: int | None = None,
    aid: int | None = None,
    words: Callable[[str], str] = str,
    timezone: str = "UTC",
) -> tuple[Timeline, bool]:
    """The runs of the window (of one rule, one agent) laid out per agent or per rule, in the
    reader's words and zone; True when cut at the cap."""
    from_us, to_us = window
    if lane not in LANES:
        raise Invalid("lane", "must be agent or rule")
    now = now_us()
    async with engine.connect() as conn:
        rows = await queries.timeline_runs(
            conn,
            actor.scope,
            from_us,
            to_us,
            lookback_us=TIMELINE_LOOKBACK_US,
            limit=TIMELINE_MAX_BARS,
            task_id=task_id,
            aid=aid,
        )
    cut = len(rows) > TIMELINE_MAX_BARS
    runs = [_timeline_run(r, lane) for r in rows[:TIMELINE_MAX_BARS]]
    return layout(runs, from_us, to_us, now, words=words, timezone=timezone), cut


def _timeline_run(row: dict[str, Any], lane: str) -> TimelineRun:
    by_agent = lane == "agent"
    agent = row["agent_name"] or f"agent {row['aid']}"
    return TimelineRun(
        id=int(row["id"]),
        lane=int(row["aid"] if by_agent else row["task_id"]),
        lane_label=agent if by_agent else str(row["rule_name"]),
        status=str(row["status"]),
        sched_us=int(row["sched_us"]),
        start_us=int(row["start"] or 0),
        end_us=int(row["end"] or 0),
        title=str(row["rule_name"]) if by_agent else agent,
    )
