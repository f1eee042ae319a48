"""Users (superadmins manage them), roles per group (group admins grant them), the audit log."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin import credentials
from admin.actor import Actor
from admin.errors import Conflict, Invalid, NotFound
from admin.permissions import ADMIN, ROLES, Action
from admin.queries import audit, groups, sessions, users
from admin.services import audited
from i18n.marks import N_
from protocol.clock import now_us

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,63}$")


def is_user_name(name: str) -> bool:
    """Whether `name` is spelt as user names are (lower-case ASCII, at most 64)."""
    return bool(_NAME_RE.match(name))


def checked_name(name: str) -> str:
    """User names are lower case: letters, digits and `_ . @ -`, at most 64."""
    name = name.strip().lower()
    if not _NAME_RE.match(name):
        raise Invalid("name", "use 1-64 letters, digits, '_', '.', '@' or '-'")
    return name


def _is_group_admin(actor: Actor) -> bool:
    return any(role == ADMIN for role in actor.grants.values())


async def list_users(engine: AsyncEngine, actor: Actor) -> list[dict[str, Any]]:
    """Superadmins and group admins (who grant roles) see every user; others only themselves."""
    everyone = actor.user.superadmin or _is_group_admin(actor)
    async with engine.connect() as conn:
        return await users.list_users(conn, None if everyone else frozenset({actor.user.id}))


async def get_user(engine: AsyncEngine, actor: Actor, user_id: int) -> dict[str, Any]:
    everyone = actor.user.superadmin or _is_group_admin(actor)
    async with engine.connect() as conn:
        row = await users.user_by_id(conn, user_id)
        if row is None or not (everyone or user_id == actor.user.id):
            raise NotFound("no such user")
        row["grants"] = await users.list_grants(conn, _grant_scope(actor), user_id=user_id)
    return row


async def create_user(
    engine: AsyncEngine, actor: Actor, name: str, password: str, superadmin: bool = False
) -> dict[str, Any]:
    actor.require(Action.MANAGE_USERS, None, N_("user"))
    name = checked_name(name)
    credentials.check_password_rules(password)
    password_hash = await asyncio.to_thread(credentials.hash_password, password)
    now = now_us()
    async with engine.begin() as conn:
        if await users.user_by_name(conn, name) is not None:
            raise Conflict(f"a user named {name!r} exists already", "name")
        user_id = await users.insert_user(conn, name, password_hash, superadmin, now)
        row = await users.user_by_id(conn, user_id)
        await audited(conn, actor, now, "user.create", ("user", user_id, None), after=row)
    return row or {}


async def _keeps_a_superadmin(
    conn: AsyncConnection, before: dict[str, Any], after: dict[str, Any]
) -> None:
    was = before["superadmin"] and before["status"] == 1
    still = (
        after.get("superadmin", before["superadmin"]) and after.get("status", before["status"]) == 1
    )
    if was and not still and await users.count_superadmins(conn) <= 1:
        raise Conflict("this is the last active superadmin")


async def _user_changes(values: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "superadmin" in values:
        changes["superadmin"] = int(bool(values["superadmin"]))
    if "status" in values:
        if values["status"] not in (0, 1):
            raise Invalid("status", "must be 1 (active) or 0 (disabled)")
        changes["status"] = values["status"]
    if "totp_required" in values and values["totp_required"] is not None:
        changes["totp_required"] = int(bool(values["totp_required"]))
    if values.get("totp_reset"):
        changes |= {"totp_secret": "", "totp_last_step": 0}
    if values.get("password"):
        credentials.check_password_rules(values["password"])
        changes["password_hash"] = await asyncio.to_thread(
            credentials.hash_password, values["password"]
        )
    return changes


async def update_user(
    engine: AsyncEngine, actor: Actor, user_id: int, values: dict[str, Any]
) -> dict[str, Any]:
    """Superadmin flag, active/disabled, password reset; the last superadmin stays one."""
    actor.require(Action.MANAGE_USERS, None, N_("user"))
    changes = await _user_changes(values)
    now = now_us()
    async with engine.begin() as conn:
        before = await users.user_by_id(conn, user_id)
        if before is None:
            raise NotFound("no such user")
        await _keeps_a_superadmin(conn, before, changes)
        await users.update_user(conn, user_id, changes, now)
        if "password_hash" in changes or changes.get("status") == 0:
            # A reset is for a password that may be known to someone else: everything signed
            # in with it (sessions, and the API tokens made with it) ends with it.
            await sessions.delete_user_sessions(conn, user_id)
            await sessions.revoke_user_tokens(conn, user_id, now)
        after = await users.user_by_id(conn, user_id)
        shown = after or {}
        if "password_hash" in changes:
            shown = shown | {"password": "reset"}
        target = ("user", user_id, None)
        await audited(conn, actor, now, "user.update", target, before=before, after=shown)
    return after or {}


async def delete_user(engine: AsyncEngine, actor: Actor, user_id: int) -> None:
    actor.require(Action.MANAGE_USERS, None, N_("user"))
    if user_id == actor.user.id:
        raise Conflict("you cannot delete yourself")
    async with engine.begin() as conn:
        before = await users.user_by_id(conn, user_id)
        if before is None:
            raise NotFound("no such user")
        await _keeps_a_superadmin(conn, before, {"status": 0})
        before["grants"] = await users.list_grants(conn, None, user_id=user_id)
        await users.delete_user(conn, user_id)
        await audited(conn, actor, now_us(), "user.delete", ("user", user_id, None), before=before)


# ---------------------------------------------------------------- grants


def _grant_scope(actor: Actor) -> frozenset[int] | None:
    """Grants one may read: all (superadmin), those in groups one administers, one's own."""
    admin_of = actor.scope_for(Action.GRANT)
    return None if admin_of is None else admin_of | frozenset(actor.grants)


async def list_grants(
    engine: AsyncEngine, actor: Actor, *, gid: int | None = None, user_id: int | None = None
) -> list[dict[str, Any]]:
    admin_of = actor.scope_for(Action.GRANT)
    async with engine.connect() as conn:
        rows = await users.list_grants(conn, _grant_scope(actor), gid=gid, user_id=user_id)
    if admin_of is None:
        return rows
    return [r for r in rows if r["gid"] in admin_of or r["user_id"] == actor.user.id]


async def put_grant(
    engine: AsyncEngine, actor: Actor, user_id: int, gid: int, role: str
) -> dict[str, Any]:
    """Give a user one role in a group (replacing the one they had there)."""
    actor.require(Action.GRANT, gid, N_("group"))
    if role not in ROLES:
        raise Invalid("role", f"{role!r} is not one of {', '.join(ROLES)}")
    now = now_us()
    async with engine.begin() as conn:
        if await groups.group_by_id(conn, gid) is None:
            raise NotFound("no such group")
        if await users.user_by_id(conn, user_id) is None:
            raise Invalid("user_id", f"no such user: {user_id}")
        before = await users.grant_of(conn, user_id, gid)
        await users.put_grant(conn, user_id, gid, role, now)
        after = await users.grant_of(conn, user_id, gid)
        target = ("grant", (after or {}).get("id", ""), gid)
        await audited(conn, actor, now, "grant.put", target, before=before, after=after)
    return after or {}


async def get_grant(engine: AsyncEngine, actor: Actor, grant_id: int) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = await users.grant_by_id(conn, grant_id)
    if row is None or (row["user_id"] != actor.user.id and not actor.can(Action.GRANT, row["gid"])):
        raise NotFound("no such grant")
    return row


async def delete_grant(engine: AsyncEngine, actor: Actor, grant_id: int) -> None:
    async with engine.begin() as conn:
        row = await users.grant_by_id(conn, grant_id)
        if row is None:
            raise NotFound("no such grant")
        actor.require(Action.GRANT, row["gid"], N_("grant"))
        await users.delete_grant(conn, grant_id)
        target = ("grant", grant_id, row["gid"])
        await audited(conn, actor, now_us(), "grant.delete", target, before=row)


async def list_audit(
    engine: AsyncEngine,
    actor: Actor,
    *,
    before_id: int | None = None,
    limit: int = 100,
    **filters: str,
) -> list[dict[str, Any]]:
    """Superadmins read everything; group admins the entries of their groups."""
    async with engine.connect() as conn:
        return await audit.list_entries(
            conn, actor.scope_for(Action.GRANT), before_id=before_id, limit=limit, **filters
        )
