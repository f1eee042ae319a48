"""The fleet at a glance (`GET /api/v1/status`): rules by status, recent runs, the leader."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row, in_scope
from center.store.lease import LEASE_NAME
from center.tables import crontab, leader_lease, task_process

DELETED = -1


async def rule_counts(conn: AsyncConnection, gids: frozenset[int] | None) -> dict[int, int]:
    """status → rules in the scope's groups (deleted ones left out)."""
    query = (
        select(crontab.c.status, func.count())
        .where(crontab.c.status != DELETED, in_scope(crontab.c.gid, gids))
        .group_by(crontab.c.status)
    )
    return {int(s): int(n) for s, n in (await conn.execute(query)).all()}


async def rules_in_error(conn: AsyncConnection, gids: frozenset[int] | None) -> int:
    query = select(func.count()).where(
        crontab.c.status != DELETED, crontab.c.error != "", in_scope(crontab.c.gid, gids)
    )
    return int(await conn.scalar(query) or 0)


async def runs_since(
    conn: AsyncConnection, gids: frozenset[int] | None, since_us: int
) -> dict[str, int]:
    """status → runs scheduled from `since_us` on, of the scope's rules."""
    query = (
        select(task_process.c.status, func.count())
        .select_from(task_process.join(crontab, crontab.c.id == task_process.c.task_id))
        .where(task_process.c.sched_us >= since_us, in_scope(crontab.c.gid, gids))
        .group_by(task_process.c.status)
    )
    return {str(s): int(n) for s, n in (await conn.execute(query)).all()}


async def leader(conn: AsyncConnection) -> Row | None:
    """The leader lease: which center holds it, its epoch, until when."""
    query = select(leader_lease.c.holder, leader_lease.c.epoch, leader_lease.c.expires_us).where(
        leader_lease.c.name == LEASE_NAME
    )
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None
