"""Rule history (`crontab_version`): the versions of a rule, newest first, and one of them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row, clamp_limit
from center.rule_versions import decode
from center.tables import crontab_version

_LISTED = [c for c in crontab_version.c if c.name != "content"]


async def list_versions(conn: AsyncConnection, task_id: int, limit: int = 100) -> list[Row]:
    """Who saved each version, when, and what changed; without the content."""
    query = (
        select(*_LISTED)
        .where(crontab_version.c.task_id == task_id)
        .order_by(crontab_version.c.version.desc())
        .limit(clamp_limit(limit))
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def version(conn: AsyncConnection, task_id: int, number: int) -> Row | None:
    """One version with its `content` (the rule's fields and `agents`) decoded."""
    query = select(crontab_version).where(
        crontab_version.c.task_id == task_id, crontab_version.c.version == number
    )
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["content"] = decode(out["content"])
    return out
