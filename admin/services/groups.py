"""Groups: list what one sees; superadmins create and delete; group admins rename."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin.actor import Actor
from admin.errors import Conflict, Invalid, NotFound
from admin.permissions import Action
from admin.queries import alerts, calendars, groups, users
from admin.services import audited
from i18n.marks import N_
from protocol.clock import now_us

NAME_CHARS = 64
DESCRIPTION_CHARS = 255


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in values:
        name = str(values["name"]).strip()
        if not name:
            raise Invalid("name", "is empty: give the group a name")
        if len(name) > NAME_CHARS:
            raise Invalid("name", f"is longer than {NAME_CHARS} characters")
        out["name"] = name
    if "description" in values:
        description = str(values["description"]).strip()
        if len(description) > DESCRIPTION_CHARS:
            raise Invalid("description", f"is longer than {DESCRIPTION_CHARS} characters")
        out["description"] = description
    if "retention_days" in values:
        days = values["retention_days"]
        if not isinstance(days, int) or not 1 <= days <= 3650:
            raise Invalid("retention_days", "must be a whole number of days, 1-3650")
        out["retention_days"] = days
    return out


async def _name_free(conn: AsyncConnection, name: str, gid: int | None) -> None:
    existing = await groups.group_by_name(conn, name)
    if existing is not None and existing["id"] != gid:
        raise Conflict(f"a group named {name!r} exists already", "name")


async def list_groups(engine: AsyncEngine, actor: Actor) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await groups.list_groups(conn, actor.scope)
    for row in rows:
        row["role"] = "superadmin" if actor.user.superadmin else actor.grants.get(row["id"])
    return rows


async def get_group(engine: AsyncEngine, actor: Actor, gid: int) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await _visible(conn, actor, gid, Action.VIEW)


async def _visible(conn: AsyncConnection, actor: Actor, gid: int, action: Action) -> dict[str, Any]:
    actor.require(action, gid, N_("group"))
    row = await groups.group_by_id(conn, gid)
    if row is None:
        raise NotFound("no such group")
    return row


async def create_group(engine: AsyncEngine, actor: Actor, values: dict[str, Any]) -> dict[str, Any]:
    actor.require(Action.MANAGE_GROUPS, None, N_("group"))
    checked = _checked(values)
    if "name" not in checked:
        raise Invalid("name", "is required")
    now = now_us()
    async with engine.begin() as conn:
        await _name_free(conn, checked["name"], None)
        gid = await groups.insert_group(conn, checked, now)
        row = await groups.group_by_id(conn, gid)
        await audited(conn, actor, now, "group.create", ("group", gid, gid), after=row)
    return row or {}


async def update_group(
    engine: AsyncEngine, actor: Actor, gid: int, values: dict[str, Any]
) -> dict[str, Any]:
    checked = _checked(values)
    now = now_us()
    async with engine.begin() as conn:
        before = await _visible(conn, actor, gid, Action.EDIT)
        if "name" in checked:
            await _name_free(conn, checked["name"], gid)
        await groups.update_group(conn, gid, checked, now)
        after = await groups.group_by_id(conn, gid)
        await audited(
            conn, actor, now, "group.update", ("group", gid, gid), before=before, after=after
        )
    return after or {}


async def delete_group(engine: AsyncEngine, actor: Actor, gid: int) -> None:
    """Remove an empty group, the roles in it and its alert channels (secrets included);
    refused while it holds rules or agents. Its run history and audit rows stay, reachable by
    superadmins only: a group id is never given again (AUTOINCREMENT on SQLite too)."""
    now = now_us()
    async with engine.begin() as conn:
        before = await _visible(conn, actor, gid, Action.VIEW)
        actor.require(Action.MANAGE_GROUPS, gid, N_("group"))
        n_rules, n_agents = await groups.usage(conn, gid)
        if n_rules or n_agents:
            raise Conflict(
                f"the group still has {n_rules} rules and {n_agents} agents: "
                "move or delete them first"
            )
        await users.delete_group_grants(conn, gid)
        await calendars.delete_group_calendars(conn, gid)
        for channel_id in await alerts.group_channel_ids(conn, gid):
            await alerts.delete_channel(conn, channel_id, now)
        await groups.delete_group(conn, gid)
        await audited(conn, actor, now, "group.delete", ("group", gid, gid), before=before)
