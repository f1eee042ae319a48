"""Groups' calendars (`calendar`) and the rules that name one."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row, in_scope
from center.store._util import new_id
from center.tables import calendar, crontab, workflow

DELETED = -1


async def list_calendars(conn: AsyncConnection, gids: frozenset[int] | None) -> list[Row]:
    query = (
        select(calendar)
        .where(in_scope(calendar.c.gid, gids))
        .order_by(calendar.c.gid, calendar.c.name)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def calendar_by_id(conn: AsyncConnection, calendar_id: int) -> Row | None:
    found = (await conn.execute(select(calendar).where(calendar.c.id == calendar_id))).mappings()
    row = found.first()
    return dict(row) if row else None


async def calendar_by_name(conn: AsyncConnection, gid: int, name: str) -> Row | None:
    query = select(calendar).where(calendar.c.gid == gid, calendar.c.name == name)
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None


async def insert_calendar(conn: AsyncConnection, values: Row, now_us: int) -> int:
    stmt = insert(calendar).values(**values, create_time=now_us, update_time=now_us)
    return new_id(await conn.execute(stmt))


async def update_calendar(
    conn: AsyncConnection, calendar_id: int, values: Row, now_us: int
) -> None:
    stmt = update(calendar).where(calendar.c.id == calendar_id)
    await conn.execute(stmt.values(**values, update_time=now_us))


async def delete_calendar(conn: AsyncConnection, calendar_id: int) -> None:
    await conn.execute(delete(calendar).where(calendar.c.id == calendar_id))


async def delete_group_calendars(conn: AsyncConnection, gid: int) -> None:
    await conn.execute(delete(calendar).where(calendar.c.gid == gid))


async def rules_using(conn: AsyncConnection, gid: int, name: str) -> list[int]:
    """Ids of the group's rules (not deleted) that name this calendar."""
    query = select(crontab.c.id).where(
        crontab.c.gid == gid, crontab.c.calendar == name, crontab.c.status != DELETED
    )
    return [int(i) for i in (await conn.execute(query.order_by(crontab.c.id))).scalars()]


async def workflows_using(conn: AsyncConnection, gid: int, name: str) -> list[int]:
    """Ids of the group's workflows (not deleted) that name this calendar."""
    query = select(workflow.c.id).where(
        workflow.c.gid == gid, workflow.c.calendar == name, workflow.c.status != DELETED
    )
    return [int(i) for i in (await conn.execute(query.order_by(workflow.c.id))).scalars()]
