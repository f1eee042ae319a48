"""The dashboard: agents online and offline, runs of the last 24 h, runs now, rules in trouble."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from admin.actor import Actor
from admin.chart import HOURS
from admin.permissions import sees_pending_agents
from admin.queries import dashboard
from protocol.clock import now_us

ACTIVE_SHOWN = 20


async def summary(engine: AsyncEngine, actor: Actor) -> dict[str, Any]:
    """The figures of the dashboard; `hourly` and `now_hour` are what `chart.runs_chart` draws
    (in the reader's words and zone, which the page knows)."""
    now_hour = now_us() // dashboard.HOUR_US
    scope = actor.scope
    async with engine.connect() as conn:
        counts = await dashboard.agent_counts(conn, scope)
        pending = (
            await dashboard.pending_count(conn)
            if sees_pending_agents(actor.user, actor.grants)
            else 0
        )
        hourly = await dashboard.runs_by_hour(
            conn, scope, (now_hour - HOURS + 1) * dashboard.HOUR_US
        )
        return {
            "agents": {
                "online": counts.get(1, 0),
                "offline": counts.get(2, 0),
                "disabled": counts.get(0, 0),
                "pending": pending,
            },
            "hourly": hourly,
            "now_hour": now_hour,
            "active": await dashboard.active_runs(conn, scope, ACTIVE_SHOWN),
            "errors": await dashboard.rules_in_error(conn, scope),
            "crash_loops": await dashboard.crash_loops(conn, scope),
        }
