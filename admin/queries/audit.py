"""The audit log: one row per change, login and command, with before and after as JSON."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row, clamp_limit, in_scope
from center.tables import audit_log


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, default=str)


async def record(
    conn: AsyncConnection,
    *,
    at_us: int,
    user_id: int,
    username: str,
    action: str,
    object_type: str,
    object_id: object = "",
    gid: int | None = None,
    before: Any = None,
    after: Any = None,
    client: str = "",
) -> None:
    await conn.execute(
        insert(audit_log).values(
            at_us=at_us,
            user_id=user_id,
            username=username[:64],
            action=action,
            object_type=object_type,
            object_id=str(object_id)[:64],
            gid=gid,
            before_json=_json(before),
            after_json=_json(after),
            client=client[:64],
        )
    )


async def list_entries(
    conn: AsyncConnection,
    gids: frozenset[int] | None,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[Row]:
    """Newest first. A scoped reader sees only entries of their groups (none without a group)."""
    query = select(audit_log).where(in_scope(audit_log.c.gid, gids))
    if object_type:
        query = query.where(audit_log.c.object_type == object_type)
    if object_id:
        query = query.where(audit_log.c.object_id == object_id)
    if before_id:
        query = query.where(audit_log.c.id < before_id)
    query = query.order_by(audit_log.c.id.desc()).limit(clamp_limit(limit))
    return [_decoded(dict(r)) for r in (await conn.execute(query)).mappings()]


def _decoded(row: Row) -> Row:
    for name in ("before_json", "after_json"):
        text = row.pop(name)
        row[name.removesuffix("_json")] = json.loads(text) if text else None
    return row
