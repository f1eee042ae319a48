"""Rules (`crontab`), their target agents (`crontab_agent`) and daemon states."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row, clamp_limit, in_scope
from center.store._util import new_id
from center.tables import agents, cron_group, crontab, crontab_agent, daemon_state, task_process
from protocol import statuses

DELETED = -1


def _base_query() -> Select[Any]:
    return select(crontab, cron_group.c.name.label("group_name")).outerjoin(
        cron_group, cron_group.c.id == crontab.c.gid
    )


async def list_rules(
    conn: AsyncConnection,
    gids: frozenset[int] | None,
    *,
    gid: int | None = None,
    name: str = "",
    status: int | None = None,
    limit: int = 500,
) -> list[Row]:
    """Rules the scope sees (never deleted ones), by name; `name` matches a substring."""
    query = _base_query().where(crontab.c.status != DELETED, in_scope(crontab.c.gid, gids))
    if gid is not None:
        query = query.where(crontab.c.gid == gid)
    if "\x00" in name:
        return []  # SQLite ends a LIKE pattern at NUL: it would match every name
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(crontab.c.name.like(f"%{escaped}%", escape="\\"))
    if status is not None:
        query = query.where(crontab.c.status == status)
    query = query.order_by(crontab.c.name, crontab.c.id).limit(clamp_limit(limit))
    rows = [dict(r) for r in (await conn.execute(query)).mappings()]
    targets = await targets_of(conn, [r["id"] for r in rows])
    for row in rows:
        row["agents"] = targets.get(row["id"], [])
    return rows


async def rule_by_id(conn: AsyncConnection, task_id: int) -> Row | None:
    """The rule (deleted ones too) with `agents`, the ids of its targets."""
    found = (await conn.execute(_base_query().where(crontab.c.id == task_id))).mappings()
    row = found.first()
    if row is None:
        return None
    out = dict(row)
    out["agents"] = (await targets_of(conn, [task_id])).get(task_id, [])
    return out


async def targets_of(conn: AsyncConnection, task_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    if not task_ids:
        return out
    query = (
        select(crontab_agent.c.task_id, crontab_agent.c.aid)
        .where(crontab_agent.c.task_id.in_(task_ids))
        .order_by(crontab_agent.c.aid)
    )
    for task_id, aid in (await conn.execute(query)).all():
        out[int(task_id)].append(int(aid))
    return out


async def insert_rule(conn: AsyncConnection, values: Row, now_us: int) -> int:
    stmt = insert(crontab).values(**values, create_time=now_us, update_time=now_us)
    result = await conn.execute(stmt)
    return new_id(result)


async def update_rule(conn: AsyncConnection, task_id: int, values: Row, now_us: int) -> None:
    """Change columns; update_time always moves, so the center picks the change up."""
    stmt = update(crontab).where(crontab.c.id == task_id)
    await conn.execute(stmt.values(**values, update_time=now_us))


async def set_targets(conn: AsyncConnection, task_id: int, aids: list[int]) -> None:
    await conn.execute(delete(crontab_agent).where(crontab_agent.c.task_id == task_id))
    if aids:
        await conn.execute(
            insert(crontab_agent), [{"task_id": task_id, "aid": aid} for aid in sorted(set(aids))]
        )


async def daemon_states(conn: AsyncConnection, task_id: int) -> list[Row]:
    query = (
        select(daemon_state, agents.c.name.label("agent_name"))
        .outerjoin(agents, agents.c.id == daemon_state.c.aid)
        .where(daemon_state.c.task_id == task_id)
        .order_by(daemon_state.c.aid)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def active_runs(conn: AsyncConnection, task_id: int) -> int:
    """How many runs of the rule are sent or running now."""
    query = select(func.count()).where(
        task_process.c.task_id == task_id,
        task_process.c.status.in_(sorted(statuses.ACTIVE - {statuses.PLANNED})),
    )
    return int(await conn.scalar(query) or 0)


async def rule_names(conn: AsyncConnection, gids: frozenset[int] | None) -> list[Row]:
    """Id, name and group of every rule the scope sees (for pickers)."""
    query = (
        select(crontab.c.id, crontab.c.name, crontab.c.gid)
        .where(crontab.c.status != DELETED, in_scope(crontab.c.gid, gids))
        .order_by(crontab.c.name)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]
