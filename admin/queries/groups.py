"""Groups (`cron_group`) and what they hold."""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row, in_scope
from center.store._util import new_id
from center.tables import agents, cron_group, crontab

DELETED = -1


async def list_groups(conn: AsyncConnection, gids: frozenset[int] | None) -> list[Row]:
    """The groups with their counts of rules and agents (deleted ones not counted)."""
    rules = (
        select(crontab.c.gid, func.count().label("n"))
        .where(crontab.c.status != DELETED)
        .group_by(crontab.c.gid)
        .subquery()
    )
    hosts = (
        select(agents.c.gid, func.count().label("n"))
        .where(agents.c.status != DELETED)
        .group_by(agents.c.gid)
        .subquery()
    )
    query = (
        select(
            cron_group,
            func.coalesce(rules.c.n, 0).label("rules"),
            func.coalesce(hosts.c.n, 0).label("agents"),
        )
        .outerjoin(rules, rules.c.gid == cron_group.c.id)
        .outerjoin(hosts, hosts.c.gid == cron_group.c.id)
        .where(in_scope(cron_group.c.id, gids))
        .order_by(cron_group.c.name)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def group_by_id(conn: AsyncConnection, gid: int) -> Row | None:
    found = (await conn.execute(select(cron_group).where(cron_group.c.id == gid))).mappings()
    row = found.first()
    return dict(row) if row else None


async def group_by_name(conn: AsyncConnection, name: str) -> Row | None:
    found = (await conn.execute(select(cron_group).where(cron_group.c.name == name))).mappings()
    row = found.first()
    return dict(row) if row else None


async def insert_group(conn: AsyncConnection, values: Row, now_us: int) -> int:
    stmt = insert(cron_group).values(**values, create_time=now_us, update_time=now_us)
    result = await conn.execute(stmt)
    return new_id(result)


async def update_group(conn: AsyncConnection, gid: int, values: Row, now_us: int) -> None:
    stmt = update(cron_group).where(cron_group.c.id == gid)
    await conn.execute(stmt.values(**values, update_time=now_us))


async def usage(conn: AsyncConnection, gid: int) -> tuple[int, int]:
    """(rules, agents) in the group that are not deleted."""
    n_rules = await conn.scalar(
        select(func.count()).where(crontab.c.gid == gid, crontab.c.status != DELETED)
    )
    n_agents = await conn.scalar(
        select(func.count()).where(agents.c.gid == gid, agents.c.status != DELETED)
    )
    return int(n_rules or 0), int(n_agents or 0)


async def delete_group(conn: AsyncConnection, gid: int) -> None:
    await conn.execute(delete(cron_group).where(cron_group.c.id == gid))


async def group_names(conn: AsyncConnection) -> dict[int, str]:
    rows = await conn.execute(select(cron_group.c.id, cron_group.c.name))
    return {int(gid): str(name) for gid, name in rows.all()}


async def ids_by_name(conn: AsyncConnection, names: list[str]) -> dict[str, int]:
    """name → id of the groups named (names no group has are left out)."""
    if not names:
        return {}
    query = select(cron_group.c.name, cron_group.c.id).where(cron_group.c.name.in_(names))
    return {str(name): int(gid) for name, gid in (await conn.execute(query)).all()}
