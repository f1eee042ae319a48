"""Logging in (throttled), sessions with CSRF tokens, API tokens, and password changes."""

from __future__ import annotations

import asyncio
import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin import credentials, throttle
from admin.actor import Actor
from admin.config import AdminConfig
from admin.errors import Invalid, NotFound, Throttled, Unauthorized
from admin.permissions import User
from admin.queries import audit, sessions, users
from admin.queries import throttle as throttle_rows
from admin.services import audited
from admin.services.users import is_user_name
from protocol.clock import now_us

WRONG_LOGIN = "wrong username or password"
_US = 1_000_000
# A session's last-seen time is written at most this often (not on every request).
_TOUCH_EVERY_US = 60 * _US


@dataclass(frozen=True, slots=True)
class Session:
    actor: Actor
    csrf: str
    id_hash: str


def _policies(cfg: AdminConfig) -> tuple[throttle.ThrottlePolicy, throttle.ThrottlePolicy]:
    def policy(free: int) -> throttle.ThrottlePolicy:
        return throttle.ThrottlePolicy(
            free, cfg.admin_login_backoff_s, cfg.admin_login_backoff_max_s, cfg.admin_login_forget_s
        )

    return policy(cfg.admin_login_free_failures), policy(cfg.admin_login_addr_free_failures)


def login_name(name: str) -> str:
    """The one spelling of a typed user name: width and compatibility forms folded (NFKC),
    case folded, so every variant of a name shares its login throttle."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


def _keys(name: str, client: str) -> list[str]:
    """Throttle keys in ASCII: a name no user can have is hashed, or the database's collation
    would fold "user:álice" into "user:alice" and mix their counts."""
    if not is_user_name(name):
        name = "~" + hashlib.sha256(name.encode()).hexdigest()[:40]
    return [f"user:{name}", f"addr:{client}"[:160]]


async def actor_of(conn: AsyncConnection, user_id: int, client: str) -> Actor | None:
    """The active user with their grants; None for a disabled or deleted one."""
    row = await users.user_by_id(conn, user_id)
    if row is None or row["status"] != 1:
        return None
    user = User(id=row["id"], name=row["name"], superadmin=bool(row["superadmin"]))
    return Actor(user, await users.roles_of(conn, user_id), client)


async def login(
    engine: AsyncEngine, cfg: AdminConfig, name: str, password: str, client: str
) -> Actor:
    """Check a username and password; Throttled while backing off, Unauthorized if wrong."""
    name = login_name(name)
    now = now_us()
    keys = _keys(name, client)
    policies = dict(zip(keys, _policies(cfg), strict=True))
    async with engine.connect() as conn:
        states = await throttle_rows.load_states(conn, keys)
        # Only a name that could exist is looked up, and only that very name is taken: the
        # database's collation would also match "ádmin" to "admin", under another throttle key.
        row = await users.user_by_name(conn, name) if is_user_name(name) else None
        row = row if row is not None and row["name"] == name else None
    states = {k: throttle.current(s, policies[k], now) for k, s in states.items()}
    wait = max(throttle.wait_s(s, now) for s in states.values())
    if wait > 0:
        await _failed(engine, name, client, "throttled", {})
        raise Throttled(wait)
    good_hash = row["password_hash"] if row is not None and row["status"] == 1 else None
    ok = await asyncio.to_thread(credentials.verify_password, good_hash, password)
    if not ok or row is None:
        after = {k: throttle.after_failure(s, policies[k], now) for k, s in states.items()}
        await _failed(engine, name, client, "wrong username or password", after)
        raise Unauthorized(WRONG_LOGIN)
    return await _succeeded(engine, row, password, client, keys[0])


async def _failed(
    engine: AsyncEngine,
    name: str,
    client: str,
    reason: str,
    states: dict[str, throttle.ThrottleState],
) -> None:
    async with engine.begin() as conn:
        for key, state in states.items():
            await throttle_rows.save_state(conn, key, state)
        await audit.record(
            conn,
            at_us=now_us(),
            user_id=0,
            username=name[:64],
            action="login.failed",
            object_type="user",
            object_id=name[:64],
            after={"reason": reason},
            client=client,
        )


async def _succeeded(
    engine: AsyncEngine, row: dict[str, Any], password: str, client: str, user_key: str
) -> Actor:
    rehashed = None
    if credentials.needs_rehash(row["password_hash"]):
        rehashed = await asyncio.to_thread(credentials.hash_password, password)
    async with engine.begin() as conn:
        await throttle_rows.clear_state(conn, user_key)
        if rehashed is not None:
            await users.update_user(conn, row["id"], {"password_hash": rehashed}, now_us())
        actor = await actor_of(conn, row["id"], client)
        if actor is None:
            raise Unauthorized(WRONG_LOGIN)
        await audited(conn, actor, now_us(), "login", ("user", row["id"], None))
    return actor


# ---------------------------------------------------------------- browser sessions


async def start_session(
    engine: AsyncEngine, actor: Actor, cfg: AdminConfig, old_session_id: str | None
) -> str:
    """A new session for a fresh login; any session the browser had is ended (no fixation)."""
    session_id = credentials.new_secret()
    now = now_us()
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
                "expires_us": now + cfg.admin_session_max_s * _US,
            },
        )
    return session_id


async def session_of(
    engine: AsyncEngine, cfg: AdminConfig, session_id: str, client: str
) -> Session | None:
    """The session a cookie names, if it is still good (not expired, not idle too long)."""
    id_hash = credentials.digest(session_id)
    now = now_us()
    async with engine.connect() as conn:
        row = await sessions.session_by_hash(conn, id_hash)
        if row is None or row["expires_us"] <= now:
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
