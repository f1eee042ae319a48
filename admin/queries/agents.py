"""Agents, what runs on them now, and the rules that target them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row, in_scope
from center.tables import agents, cert_revoked, cron_group, crontab, crontab_agent, task_process
from protocol import statuses

PENDING, ENABLED, UNREACHABLE, DELETED = 0, 1, 2, -1
_ACTIVE = sorted(statuses.ACTIVE - {statuses.PLANNED})


def _base_query() -> Select[Any]:
    active = (
        select(task_process.c.aid, func.count().label("n"))
        .where(task_process.c.status.in_(_ACTIVE))
        .group_by(task_process.c.aid)
        .subquery()
    )
    return (
        select(
            agents,
            cron_group.c.name.label("group_name"),
            func.coalesce(active.c.n, 0).label("running"),
        )
        .outerjoin(cron_group, cron_group.c.id == agents.c.gid)
        .outerjoin(active, active.c.aid == agents.c.id)
    )


def pending_condition() -> ColumnElement[bool]:
    return and_(agents.c.status == PENDING, agents.c.gid.is_(None))


async def list_agents(
    conn: AsyncConnection,
    gids: frozenset[int] | None,
    *,
    gid: int | None = None,
    status: int | None = None,
) -> list[Row]:
    """Approved (and paused) agents the scope sees; deleted and pending ones are left out."""
    query = _base_query().where(
        agents.c.status != DELETED,
        agents.c.gid.is_not(None) | (agents.c.status != PENDING),
        in_scope(agents.c.gid, gids),
    )
    if gid is not None:
        query = query.where(agents.c.gid == gid)
    if status is not None:
        query = query.where(agents.c.status == status)
    return [dict(r) for r in (await conn.execute(query.order_by(agents.c.name))).mappings()]


async def list_pending(conn: AsyncConnection) -> list[Row]:
    query = _base_query().where(pending_condition())
    return [dict(r) for r in (await conn.execute(query.order_by(agents.c.name))).mappings()]


async def agent_by_id(conn: AsyncConnection, aid: int) -> Row | None:
    query = _base_query().where(agents.c.id == aid)
    found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None


async def update_agent(conn: AsyncConnection, aid: int, values: Row, now_us: int) -> None:
    stmt = update(agents).where(agents.c.id == aid)
    await conn.execute(stmt.values(**values, update_time=now_us))


async def runs_on(conn: AsyncConnection, aid: int, limit: int = 50) -> list[Row]:
    """What runs on the agent now (sent or started), newest first."""
    query = (
        select(task_process, crontab.c.name.label("rule_name"), crontab.c.gid.label("rule_gid"))
        .outerjoin(crontab, crontab.c.id == task_process.c.task_id)
        .where(task_process.c.aid == aid, task_process.c.status.in_(_ACTIVE))
        .order_by(task_process.c.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def rules_on(conn: AsyncConnection, aid: int) -> list[Row]:
    """The rules (not deleted) that list this agent."""
    query = (
        select(crontab.c.id, crontab.c.name, crontab.c.status, crontab.c.gid)
        .join(crontab_agent, crontab_agent.c.task_id == crontab.c.id)
        .where(crontab_agent.c.aid == aid, crontab.c.status != DELETED)
        .order_by(crontab.c.name)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def detach(conn: AsyncConnection, aid: int, now_us: int) -> list[int]:
    """Take the agent out of every rule; the rules' update_time tells the center."""
    query = select(crontab_agent.c.task_id).where(crontab_agent.c.aid == aid)
    task_ids = [int(t) for t in (await conn.scalars(query)).all()]
    if task_ids:
        await conn.execute(delete(crontab_agent).where(crontab_agent.c.aid == aid))
        await conn.execute(
            update(crontab).where(crontab.c.id.in_(task_ids)).values(update_time=now_us)
        )
    return task_ids


async def agents_by_ids(conn: AsyncConnection, aids: list[int]) -> dict[int, Row]:
    if not aids:
        return {}
    query = select(agents.c.id, agents.c.gid, agents.c.status, agents.c.name).where(
        agents.c.id.in_(aids)
    )
    return {int(r["id"]): dict(r) for r in (await conn.execute(query)).mappings()}


async def revoke_cert(conn: AsyncConnection, aid: int, cert: Row, reason: str, now_us: int) -> None:
    """Every center refuses this certificate (`cert_serial`, `cert_not_after` of the agent's
    row) from its next agents poll on."""
    serial, not_after_us = cert["cert_serial"], cert["cert_not_after"]
    exists = await conn.scalar(select(cert_revoked.c.serial).where(cert_revoked.c.serial == serial))
    if exists is None:
        await conn.execute(
            insert(cert_revoked).values(
                serial=serial, aid=aid, reason=reason, not_after=not_after_us, create_time=now_us
            )
        )
