"""Sessions with CSRF tokens (and their login stages), API tokens, and password changes."""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin import credentials
from admin.actor import Actor
from admin.config import AdminConfig
from admin.errors import Invalid, NotFound
from admin.permissions import User
from admin.queries import sessions, users
from admin.services import audited
from protocol.clock import now_us

_US = 1_000_000
# A session's last-seen time is written at most this often (not on every request).
_TOUCH_EVERY_US = 60 * _US
# A login half-way (a TOTP code or enrolment still due) must be finished within this.
STAGE_MAX_S = 300


@dataclass(frozen=True, slots=True)
class Session:
    actor: Actor
    csrf: str
    id_hash: str


def login_name(name: str) -> str:
    """The one spelling of a typed user name: width and compatibility forms folded (NFKC),
    case folded, so every variant of a name shares its login throttle."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


async def actor_of(conn: AsyncConnection, user_id: int, client: str) -> Actor | None:
    """The active user with their grants; None for a disabled or deleted one."""
    row = await users.user_by_id(conn, user_id)
    if row is None or row["status"] != 1:
        return None
    user = User(id=row["id"], name=row["name"], superadmin=bool(row["superadmin"]))
    grants = await users.roles_of(conn, user_id)
    return Actor(user, grants, client, language=row["language"], timezone=row["timezone"])


# ---------------------------------------------------------------- browser sessions


async def start_session(
    engine: AsyncEngine, actor: Actor, cfg: AdminConfig, old_session_id: str | None, stage: str = ""
) -> str:
    """A new session for a fresh login; any session the browser had is ended (no fixation).
    With a `stage` ("totp", "enrol") it is only good for finishing the login, for 5 minutes."""
    session_id = credentials.new_secret()
    now = now_us()
    max_s = STAGE_MAX_S if stage else cfg.admin_session_max_s
    async with engine.begin() as conn:
        if old_session_id:
            await sessions.delete_session(conn, credentials.digest(old_session_id))
        await sessions.purge_sessions(conn, now, cfg.admin_session_idle_s * _US)
        await sessions.insert_session(
            conn,
            {
                "id_hash": credentials.digest(session_id),
                "user_id": actor.user.id,
                "csrf": credentials.new_secret(),
                "client": actor.client[:64],
                "created_us": now,
                "seen_us": now,
                "expires_us": now + max_s * _US,
                "stage": stage,
            },
        )
    return session_id


async def session_of(
    engine: AsyncEngine, cfg: AdminConfig, session_id: str, client: str
) -> Session | None:
    """The session a cookie names, if it is still good (not expired, not idle too long) and
    not half-way through a login."""
    id_hash = credentials.digest(session_id)
    now = now_us()
    async with engine.connect() as conn:
        row = await sessions.session_by_hash(conn, id_hash)
        if row is None or row["expires_us"] <= now or row["stage"]:
            return None
        if row["seen_us"] <= now - cfg.admin_session_idle_s * _US:
            return None
        actor = await actor_of(conn, row["user_id"], client)
        if actor is None:
            return None
        if now - row["seen_us"] > _TOUCH_EVERY_US:
            await sessions.touch_session(conn, id_hash, now)
            await conn.commit()
    return Session(actor, row["csrf"], id_hash)


async def staged_session(
    engine: AsyncEngine, session_id: str, stage: str, client: str
) -> Session | None:
    """A session half-way through a login at `stage`, if it has not expired."""
    id_hash = credentials.digest(session_id)
    async with engine.connect() as conn:
        row = await sessions.session_by_hash(conn, id_hash)
        if row is None or row["stage"] != stage or row["expires_us"] <= now_us():
            return None
        actor = await actor_of(conn, row["user_id"], client)
    return Session(actor, row["csrf"], id_hash) if actor is not None else None


async def end_session(engine: AsyncEngine, session: Session) -> None:
    async with engine.begin() as conn:
        await sessions.delete_session(conn, session.id_hash)
        target = ("user", session.actor.user.id, None)
        await audited(conn, session.actor, now_us(), "logout", target)


# ---------------------------------------------------------------- API tokens


async def issue_token(
    engine: AsyncEngine, cfg: AdminConfig, actor: Actor, name: str, days: int | None
) -> tuple[str, dict[str, Any]]:
    """A new bearer token (returned once, stored hashed) and its public row."""
    if days is None:
        days = cfg.admin_token_days
    if days < 0 or (cfg.admin_token_days and not 0 < days <= cfg.admin_token_days):
        raise Invalid("expires_in_days", f"must be 1-{cfg.admin_token_days or 3650}")
    token = credentials.new_api_token()
    now = now_us()
    row = {
        "user_id": actor.user.id,
        "name": name.strip()[:64],
        "token_hash": credentials.digest(token),
        "prefix": token[:12],
        "created_us": now,
        "expires_us": now + days * 86400 * _US if days else 0,
    }
    async with engine.begin() as conn:
        token_id = await sessions.insert_token(conn, row)
        public = await sessions.token_by_id(conn, token_id)
        await audited(conn, actor, now, "token.create", ("token", token_id, None), after=public)
    return token, public or {}


async def token_actor(engine: AsyncEngine, token: str, client: str) -> Actor | None:
    """The user a bearer token stands for, if it is known, not revoked and not expired."""
    now = now_us()
    async with engine.connect() as conn:
        row = await sessions.token_by_hash(conn, credentials.digest(token))
        if row is None or row["revoked_us"] or (row["expires_us"] and row["expires_us"] <= now):
            return None
        actor = await actor_of(conn, row["user_id"], client)
        if actor is not None:
            actor = replace(actor, via=f"api token {row['prefix']}")
        if actor is not None and now - row["last_used_us"] > _TOUCH_EVERY_US:
            await sessions.touch_token(conn, row["id"], now)
            await conn.commit()
    return actor


async def list_tokens(engine: AsyncEngine, actor: Actor) -> list[dict[str, Any]]:
    """The actor's own tokens; a superadmin sees everyone's."""
    async with engine.connect() as conn:
        return await sessions.list_tokens(conn, None if actor.user.superadmin else actor.user.id)


async def revoke_token(engine: AsyncEngine, actor: Actor, token_id: int) -> dict[str, Any]:
    async with engine.begin() as conn:
        row = await sessions.token_by_id(conn, token_id)
        if row is None or (row["user_id"] != actor.user.id and not actor.user.superadmin):
            raise NotFound("no such token")
        await sessions.revoke_token(conn, token_id, now_us())
        after = await sessions.token_by_id(conn, token_id)
        target = ("token", token_id, None)
        await audited(conn, actor, now_us(), "token.revoke", target, before=row, after=after)
    return after or {}


# ---------------------------------------------------------------- passwords


async def change_password(
    engine: AsyncEngine, actor: Actor, current: str, new: str, keep_session_hash: str = ""
) -> None:
    """Change one's own password; every other session of the user ends."""
    credentials.check_password_rules(new, "new_password")
    async with engine.connect() as conn:
        stored = await users.password_hash_of(conn, actor.user.id)
    if not await asyncio.to_thread(credentials.verify_password, stored, current):
        raise Invalid("current_password", "is wrong")
    new_hash = await asyncio.to_thread(credentials.hash_password, new)
    async with engine.begin() as conn:
        await users.update_user(conn, actor.user.id, {"password_hash": new_hash}, now_us())
        await sessions.delete_user_sessions(conn, actor.user.id, keep_session_hash)
        target = ("user", actor.user.id, None)
        await audited(conn, actor, now_us(), "user.password", target, after={"changed": True})
