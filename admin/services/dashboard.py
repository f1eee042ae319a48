"""The dashboard: agents online and offline, runs of the last 24 h, runs now, rules in trouble."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin.actor import Actor
from admin.chart import HOURS
from admin.permissions import sees_pending_agents
from admin.queries import Row, dashboard
from center.calendars import find_calendar
from center.errors import RuleError
from center.store.calendars import load_calendars
from protocol.clock import now_us

ACTIVE_SHOWN = 20
# A calendar whose data (chinesecalendar's, for cn-*) ends within this many days is shown.
CALENDAR_WARN_DAYS = 60


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
            "calendar_ends": await _calendars_ending(conn, scope),
        }


async def _calendars_ending(conn: AsyncConnection, scope: frozenset[int] | None) -> list[Row]:
    """Enabled rules whose calendar's data ends within CALENDAR_WARN_DAYS, with the warning
    their page shows: past that day they stop firing (fallback skip) or fire by weekday."""
    rows = await dashboard.rules_with_calendars(conn, scope)
    if not rows:
        return []
    group_calendars = await load_calendars(conn)
    today = datetime.fromtimestamp(now_us() // 1_000_000, UTC).toordinal()
    out = []
    for row in rows:
        try:
            found = find_calendar(row["calendar"], row["gid"], group_calendars)
        except RuleError:
            continue  # the rule is in error and listed as such
        if found.last is not None and found.last - today <= CALENDAR_WARN_DAYS:
            out.append(row | {"warning": found.warning(today, row["calendar_fallback"])})
    return out
