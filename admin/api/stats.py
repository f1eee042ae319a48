"""API: statistics of a rule and of a group, from the hourly rollups the center keeps."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from admin.api.responses import Out
from admin.services import stats
from admin.web import ApiActor, Engine, Int64

router = APIRouter(tags=["statistics"])


class WindowOut(Out):
    """One window (24h, 7d, 30d, up to the current hour included)."""

    window: str
    since_us: int
    runs: int
    by_status: dict[str, int]
    success_rate: float | None  # successes / runs meant to run (all but skipped)
    duration_p50_ms: float | None
    duration_p95_ms: float | None
    duration_max_ms: int | None
    lateness_p95_ms: float | None


class TrendPointOut(Out):
    """One UTC day."""

    day_us: int
    runs: int
    failed: int
    duration_p50_ms: float | None
    duration_p95_ms: float | None


class RuleStatsOut(Out):
    task_id: int
    windows: list[WindowOut]
    trend: list[TrendPointOut]


class GroupStatsOut(Out):
    gid: int
    windows: list[WindowOut]
    trend: list[TrendPointOut]


@router.get("/rules/{task_id}/stats", response_model=RuleStatsOut)
async def rule_stats(task_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Runs by status, success rate, duration p50/p95/max and start lateness p95 over 24 h,
    7 d and 30 d, and a daily trend of the last 30 days."""
    return await stats.rule_stats(engine, actor, task_id)


@router.get("/groups/{gid}/stats", response_model=GroupStatsOut)
async def group_stats(gid: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """The same over every rule of the group."""
    return await stats.group_stats(engine, actor, gid)
