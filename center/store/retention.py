"""Retention's SQL: each group's retention, and one batch of old runs or old output deleted."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from center.tables import cron_group, crontab, task_output, task_process
from protocol import statuses


async def group_retention_days(engine: AsyncEngine) -> list[tuple[int, int]]:
    """(group id, retention days) of every group."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(cron_group.c.id, cron_group.c.retention_days))).all()
    return [(int(gid), int(days)) for gid, days in rows]


async def delete_old_runs(
    engine: AsyncEngine, gid: int | None, cutoff_us: int, batch: int
) -> tuple[int, int]:
    """One batch: finished runs (and their chunks) scheduled before `cutoff_us` of the group's
    rules (`gid` None: rules without a group, with one that is gone, and removed rules);
    (runs, chunks) deleted."""
    query = (
        select(task_process.c.id, task_process.c.runid)
        .where(task_process.c.sched_us < cutoff_us)
        .where(task_process.c.status.in_(sorted(statuses.FINAL)))
        .limit(batch)
    )
    if gid is not None:
        query = query.join(crontab, crontab.c.id == task_process.c.task_id).where(
            crontab.c.gid == gid
        )
    else:
        grouped = select(crontab.c.id).where(crontab.c.gid.in_(select(cron_group.c.id)))
        query = query.where(task_process.c.task_id.not_in(grouped))
    async with engine.begin() as conn:
        rows = (await conn.execute(query)).all()
        if not rows:
            return 0, 0
        runids = [r.runid for r in rows]
        chunks = await conn.execute(delete(task_output).where(task_output.c.runid.in_(runids)))
        await conn.execute(delete(task_process).where(task_process.c.id.in_([r.id for r in rows])))
    return len(rows), int(chunks.rowcount)


async def delete_old_chunks(engine: AsyncEngine, before_us: int, batch: int) -> int:
    """One batch: output chunks of runs that finished before `before_us` (or are gone)."""
    query = (
        select(task_output.c.id)
        .select_from(task_output)
        .outerjoin(task_process, task_process.c.runid == task_output.c.runid)
        .where(task_output.c.created_us < before_us)
        .where(
            task_process.c.id.is_(None)
            | (
                task_process.c.status.in_(sorted(statuses.FINAL))
                & (task_process.c.updated_us < before_us)
            )
        )
        .limit(batch)
    )
    async with engine.begin() as conn:
        ids = [r.id for r in (await conn.execute(query)).all()]
        if ids:
            await conn.execute(delete(task_output).where(task_output.c.id.in_(ids)))
    return len(ids)
