"""What SSO tests read back: a user's roles by group name, audit rows, the refusal counter."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from center.tables import admin_grant, admin_user, audit_log, cron_group


async def roles_by_group(engine: AsyncEngine, user_name: str) -> dict[str, str]:
    """group name → role of the user (empty when the user has none or does not exist)."""
    query = (
        select(cron_group.c.name, admin_grant.c.role)
        .join(admin_grant, admin_grant.c.gid == cron_group.c.id)
        .join(admin_user, admin_user.c.id == admin_grant.c.user_id)
        .where(admin_user.c.name == user_name)
    )
    async with asyncio.timeout(10), engine.connect() as conn:
        return {str(g): str(r) for g, r in (await conn.execute(query)).all()}


async def user_row(engine: AsyncEngine, user_name: str) -> dict[str, Any] | None:
    async with asyncio.timeout(10), engine.connect() as conn:
        found = (
            (await conn.execute(select(admin_user).where(admin_user.c.name == user_name)))
            .mappings()
            .first()
        )
    return dict(found) if found else None


async def refusals(engine: AsyncEngine) -> list[dict[str, Any]]:
    """The `after` of every login.failed audit row, oldest first."""
    query = select(audit_log.c.after_json).where(audit_log.c.action == "login.failed")
    async with asyncio.timeout(10), engine.connect() as conn:
        rows = (await conn.execute(query.order_by(audit_log.c.id))).scalars().all()
    return [json.loads(r) for r in rows]
