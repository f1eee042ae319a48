"""Concurrency keys (`concurrency_key`), and the runs of the rules that hold them."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row
from center.store._util import new_id
from center.tables import agents, concurrency_key, crontab, task_process
from protocol import statuses

DELETED = -1
SHOWN_RUNS = 200


async def list_keys(conn: AsyncConnection, gid: int) -> list[Row]:
    query = select(concurrency_key).where(concurrency_key.c.gid == gid)
    rows = await conn.execute(query.order_by(concurrency_key.c.key))
    return [dict(r) for r in rows.mappings()]


async def key_by_id(conn: AsyncConnection, key_id: int) -> Row | None:
    found = await conn.execute(select(concurrency_key).where(concurrency_key.c.id == key_id))
    row = found.mappings().first()
    return dict(row) if row else None


async def key_by_name(conn: AsyncConnection, gid: int, key: str) -> Row | None:
    query = select(concurrency_key).where(
        concurrency_key.c.gid == gid, concurrency_key.c.key == key
    )
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None


async def insert_key(conn: AsyncConnection, values: Row, now_us: int) -> int:
    stmt = insert(concurrency_key).values(**values, create_time=now_us, update_time=now_us)
    return new_id(await conn.execute(stmt))


async def update_key(conn: AsyncConnection, key_id: int, values: Row, now_us: int) -> None:
    stmt = update(concurrency_key).where(concurrency_key.c.id == key_id)
    await conn.execute(stmt.values(**values, update_time=now_us))


async def delete_key(conn: AsyncConnection, key_id: int) -> None:
    await conn.execute(delete(concurrency_key).where(concurrency_key.c.id == key_id))


async def keyed_rules(conn: AsyncConnection, gid: int) -> list[Row]:
    """The group's rules (not deleted) that list any concurrency key: id, name, the list."""
    cols = (crontab.c.id, crontab.c.name, crontab.c.concurrency_keys)
    query = select(*cols).where(
        crontab.c.gid == gid, crontab.c.status != DELETED, crontab.c.concurrency_keys != ""
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def active_runs(conn: AsyncConnection, task_ids: list[int], now_us: int) -> list[Row]:
    """Runs of these rules sent and not ended (holders), and planned ones whose instant has
    passed (waiting for room), oldest first, with their agent's name."""
    if not task_ids:
        return []
    sent = task_process.c.status.in_([statuses.DISPATCHED, statuses.RUNNING])
    due = (task_process.c.status == statuses.PLANNED) & (task_process.c.sched_us <= now_us)
    cols = (
        task_process.c.id,
        task_process.c.runid,
        task_process.c.task_id,
        task_process.c.aid,
        task_process.c.status,
        task_process.c.sched_us,
        task_process.c.start,
        agents.c.name.label("agent"),
    )
    query = (
        select(*cols)
        .outerjoin(agents, agents.c.id == task_process.c.aid)
        .where(task_process.c.task_id.in_(task_ids), sent | due)
        .order_by(task_process.c.sched_us)
        .limit(SHOWN_RUNS)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]
