"""What the admin does, for pages and API alike: check the permission, change the rows, audit."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from admin.actor import Actor
from admin.queries import audit


async def audited(
    conn: AsyncConnection,
    actor: Actor,
    now_us: int,
    action: str,
    target: tuple[str, object, int | None],
    *,
    before: Any = None,
    after: Any = None,
) -> None:
    """One audit row for `action` on `target` = (object type, object id, group)."""
    object_type, object_id, gid = target
    await audit.record(
        conn,
        at_us=now_us,
        user_id=actor.user.id,
        username=actor.user.name,
        action=action,
        object_type=object_type,
        object_id=object_id,
        gid=gid,
        before=before,
        after=after,
        client=actor.client,
    )
