"""Rule history in: one `crontab_version` row per saved version, in the writer's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from center.rule_versions import SUMMARY_MAX, Author, decode, diff, encode, snapshot, summarize
from center.tables import crontab, crontab_agent, crontab_version

UNRECORDED = "first version recorded: earlier ones were saved without history"


async def record_version(
    conn: AsyncConnection,
    task_id: int,
    author: Author,
    now_us: int,
    summary: str | None = None,
) -> int:
    """Record the rule as it now is (call it after the write, in the same transaction) as its
    next version, and return the number. A save that changed nothing (bookkeeping aside) adds
    no version unless a `summary` says why (a rollback); the number returned is then the last.

    Every writer of `crontab` calls this: the admin (create, edit, pause, resume, delete,
    rollback, an agent leaving its rules), rules-as-files, the import and the demo."""
    row = (await conn.execute(select(crontab).where(crontab.c.id == task_id))).mappings().one()
    aids = (
        await conn.scalars(select(crontab_agent.c.aid).where(crontab_agent.c.task_id == task_id))
    ).all()
    content = snapshot(dict(row), aids)
    last = await _last(conn, task_id)
    previous = decode(last["content"]) if last else None
    if (
        last is not None
        and previous is not None
        and summary is None
        and not diff(previous, content)
    ):
        return int(last["version"])
    number = int(last["version"]) + 1 if last else 1
    if summary is None and last is None and row["create_time"] != now_us:
        summary = UNRECORDED  # written by something that kept no history (raw SQL, old tools)
    await conn.execute(
        insert(crontab_version).values(
            task_id=task_id,
            version=number,
            user_id=author.user_id,
            username=author.name[:64],
            via=author.via[:64],
            at_us=now_us,
            summary=(summary or summarize(previous, content))[:SUMMARY_MAX],
            content=encode(content),
        )
    )
    return number


async def _last(conn: AsyncConnection, task_id: int) -> Any:
    """The newest version, locked: on MySQL a locking read sees the latest commit (not the
    transaction's snapshot), so two saves of one rule never take the same number. The rule's
    row, updated first by every writer, already orders them; this is the second guard."""
    query = (
        select(crontab_version.c.version, crontab_version.c.content)
        .where(crontab_version.c.task_id == task_id)
        .order_by(crontab_version.c.version.desc())
        .limit(1)
        .with_for_update()
    )
    return (await conn.execute(query)).mappings().first()
