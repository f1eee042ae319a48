"""The dashboard's figures, each limited to the groups the reader sees."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row, in_scope
from center.rollup import COUNTED
from center.tables import agents, crontab, daemon_state, run_rollup, task_process
from protocol import statuses

HOUR_US = 3_600_000_000
DELETED = -1


async def agent_counts(conn: AsyncConnection, gids: frozenset[int] | None) -> dict[int, int]:
    """status → number of agents in the scope's groups (pending ones have no group)."""
    query = (
        select(agents.c.status, func.count())
        .where(agents.c.status != DELETED, agents.c.gid.is_not(None), in_scope(agents.c.gid, gids))
        .group_by(agents.c.status)
    )
    return {int(status): int(n) for status, n in (await conn.execute(query)).all()}


async def pending_count(conn: AsyncConnection) -> int:
    query = select(func.count()).where(agents.c.status == 0, agents.c.gid.is_(None))
    return int(await conn.scalar(query) or 0)


async def runs_by_hour(
    conn: AsyncConnection, gids: frozenset[int] | None, since_us: int
) -> dict[tuple[int, str], int]:
    """(hour since the epoch, status) → runs scheduled in that hour, from `since_us` on: the
    ended ones from the rollups (a day of a busy fleet is 300,000 rows; its rollups are one
    per rule and hour), the ones not ended yet from the runs (an index on status)."""
    out: dict[tuple[int, str], int] = {}
    c = run_rollup.c
    finals = (
        select(c.hour_us, *(func.sum(c[f"n_{s}"]) for s in COUNTED))
        .where(c.hour_us >= since_us - since_us % HOUR_US)
        .group_by(c.hour_us)
    )
    if gids is not None:
        # A filter, not a join: joined, MariaDB walks every rule's whole rollup history.
        finals = finals.where(
            c.task_id.in_(select(crontab.c.id).where(in_scope(crontab.c.gid, gids)))
        )
    for hour_us, *counts in (await conn.execute(finals)).all():
        for status, n in zip(COUNTED, counts, strict=True):
            if n:
                out[(int(hour_us) // HOUR_US, status)] = int(n)
    hour = (task_process.c.sched_us // HOUR_US).label("hour")
    going = (
        select(hour, task_process.c.status, func.count())
        .select_from(task_process.join(crontab, crontab.c.id == task_process.c.task_id))
        .where(
            task_process.c.status.in_(sorted(statuses.ACTIVE)),
            task_process.c.sched_us >= since_us,
            in_scope(crontab.c.gid, gids),
        )
        .group_by(hour, task_process.c.status)
    )
    for h, status, n in (await conn.execute(going)).all():
        out[(int(h), str(status))] = int(n)
    return out


async def active_runs(conn: AsyncConnection, gids: frozenset[int] | None, limit: int) -> list[Row]:
    query = (
        select(
            task_process.c.id,
            task_process.c.runid,
            task_process.c.status,
            task_process.c.start,
            task_process.c.sched_us,
            crontab.c.name.label("rule_name"),
            agents.c.name.label("agent_name"),
        )
        .join(crontab, crontab.c.id == task_process.c.task_id)
        .outerjoin(agents, agents.c.id == task_process.c.aid)
        .where(
            task_process.c.status.in_([statuses.DISPATCHED, statuses.RUNNING]),
            in_scope(crontab.c.gid, gids),
        )
        .order_by(task_process.c.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def rules_in_error(conn: AsyncConnection, gids: frozenset[int] | None) -> list[Row]:
    query = (
        select(crontab.c.id, crontab.c.name, crontab.c.error, crontab.c.gid)
        .where(crontab.c.status != DELETED, crontab.c.error != "", in_scope(crontab.c.gid, gids))
        .order_by(crontab.c.name)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def crash_loops(conn: AsyncConnection, gids: frozenset[int] | None) -> list[Row]:
    query = (
        select(
            daemon_state,
            crontab.c.name.label("rule_name"),
            agents.c.name.label("agent_name"),
        )
        .join(crontab, crontab.c.id == daemon_state.c.task_id)
        .outerjoin(agents, agents.c.id == daemon_state.c.aid)
        .where(
            daemon_state.c.crash_looping == 1,
            crontab.c.status != DELETED,
            in_scope(crontab.c.gid, gids),
        )
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def rules_with_calendars(
    conn: AsyncConnection, gids: frozenset[int] | None, limit: int = 500
) -> list[Row]:
    """Enabled rules that follow a calendar: whether its data runs out is the caller's to say."""
    c = crontab.c
    query = (
        select(c.id, c.name, c.gid, c.calendar, c.calendar_fallback)
        .where(c.status == 1, c.calendar != "", in_scope(c.gid, gids))
        .order_by(c.name)
        .limit(limit)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]
