"""Users (local and external, with their TOTP state) and their per-group grants."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row, in_scope
from center.store._util import new_id
from center.tables import admin_grant, admin_session, admin_user, api_token, cron_group

_SECRET = ("password_hash", "totp_secret")
_PUBLIC = [
    *(c for c in admin_user.c if c.name not in _SECRET),
    (admin_user.c.totp_secret != "").label("totp_enrolled"),
]


async def user_by_name(conn: AsyncConnection, name: str) -> Row | None:
    """The full row (with the password hash) of a user, by lower-case name."""
    row = (await conn.execute(select(admin_user).where(admin_user.c.name == name))).mappings()
    found = row.first()
    return dict(found) if found else None


async def user_by_id(conn: AsyncConnection, user_id: int) -> Row | None:
    query = select(*_PUBLIC).where(admin_user.c.id == user_id)
    found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None


async def user_by_subject(conn: AsyncConnection, source: str, subject: str) -> Row | None:
    """The full row of an external user, by where they come from and their subject there."""
    query = select(admin_user).where(
        admin_user.c.source == source, admin_user.c.external_subject == subject
    )
    found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None


async def insert_external_user(
    conn: AsyncConnection, name: str, source: str, subject: str, now_us: int
) -> int:
    """A user the directory vouches for: no local password (an empty hash matches nothing)."""
    result = await conn.execute(
        insert(admin_user).values(
            name=name,
            password_hash="",
            source=source,
            external_subject=subject,
            superadmin=0,
            status=1,
            create_time=now_us,
            update_time=now_us,
        )
    )
    return new_id(result)


async def totp_of(conn: AsyncConnection, user_id: int) -> tuple[str, int]:
    """(sealed secret, last accepted step) of a user; ("", 0) when none is enrolled."""
    query = select(admin_user.c.totp_secret, admin_user.c.totp_last_step).where(
        admin_user.c.id == user_id
    )
    found = (await conn.execute(query)).first()
    return (str(found[0]), int(found[1])) if found else ("", 0)


async def take_totp_step(conn: AsyncConnection, user_id: int, step: int) -> bool:
    """Record `step` as used; False when it (or a later one) was used already (a replay, or two
    logins racing with one code)."""
    stmt = update(admin_user).where(admin_user.c.id == user_id, admin_user.c.totp_last_step < step)
    result = await conn.execute(stmt.values(totp_last_step=step))
    return bool(result.rowcount)


async def password_hash_of(conn: AsyncConnection, user_id: int) -> str | None:
    query = select(admin_user.c.password_hash).where(admin_user.c.id == user_id)
    value = await conn.scalar(query)
    return str(value) if value is not None else None


async def list_users(conn: AsyncConnection, ids: frozenset[int] | None) -> list[Row]:
    query = select(*_PUBLIC).where(in_scope(admin_user.c.id, ids)).order_by(admin_user.c.name)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def count_superadmins(conn: AsyncConnection) -> int:
    query = select(func.count()).where(admin_user.c.superadmin == 1, admin_user.c.status == 1)
    return int(await conn.scalar(query) or 0)


async def insert_user(
    conn: AsyncConnection, name: str, password_hash: str, superadmin: bool, now_us: int
) -> int:
    result = await conn.execute(
        insert(admin_user).values(
            name=name,
            password_hash=password_hash,
            superadmin=int(superadmin),
            status=1,
            create_time=now_us,
            update_time=now_us,
        )
    )
    return new_id(result)


async def update_user(conn: AsyncConnection, user_id: int, values: Row, now_us: int) -> None:
    stmt = update(admin_user).where(admin_user.c.id == user_id)
    await conn.execute(stmt.values(**values, update_time=now_us))


async def delete_user(conn: AsyncConnection, user_id: int) -> None:
    """The user and everything that lets them in: grants, sessions, tokens."""
    await conn.execute(delete(admin_grant).where(admin_grant.c.user_id == user_id))
    await conn.execute(delete(admin_session).where(admin_session.c.user_id == user_id))
    await conn.execute(delete(api_token).where(api_token.c.user_id == user_id))
    await conn.execute(delete(admin_user).where(admin_user.c.id == user_id))


# ---------------------------------------------------------------- grants


async def roles_of(conn: AsyncConnection, user_id: int) -> dict[int, str]:
    """gid → role of one user."""
    query = select(admin_grant.c.gid, admin_grant.c.role).where(admin_grant.c.user_id == user_id)
    return {int(gid): str(role) for gid, role in (await conn.execute(query)).all()}


def _grant_query() -> Select[Any]:
    return (
        select(
            admin_grant,
            admin_user.c.name.label("username"),
            cron_group.c.name.label("group_name"),
        )
        .join(admin_user, admin_user.c.id == admin_grant.c.user_id)
        .join(cron_group, cron_group.c.id == admin_grant.c.gid)
    )


async def list_grants(
    conn: AsyncConnection,
    gids: frozenset[int] | None,
    *,
    user_id: int | None = None,
    gid: int | None = None,
) -> list[Row]:
    query = _grant_query().where(in_scope(admin_grant.c.gid, gids))
    if user_id is not None:
        query = query.where(admin_grant.c.user_id == user_id)
    if gid is not None:
        query = query.where(admin_grant.c.gid == gid)
    query = query.order_by(cron_group.c.name, admin_user.c.name)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def grant_by_id(conn: AsyncConnection, grant_id: int) -> Row | None:
    query = _grant_query().where(admin_grant.c.id == grant_id)
    found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None


async def grant_of(conn: AsyncConnection, user_id: int, gid: int) -> Row | None:
    query = _grant_query().where(admin_grant.c.user_id == user_id, admin_grant.c.gid == gid)
    found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None


async def put_grant(conn: AsyncConnection, user_id: int, gid: int, role: str, now_us: int) -> None:
    """Give the user `role` in the group, replacing the role they had there."""
    existing = await grant_of(conn, user_id, gid)
    if existing is None:
        values = {"user_id": user_id, "gid": gid, "role": role}
        await conn.execute(
            insert(admin_grant).values(**values, create_time=now_us, update_time=now_us)
        )
        return
    stmt = update(admin_grant).where(admin_grant.c.id == existing["id"])
    await conn.execute(stmt.values(role=role, update_time=now_us))


async def delete_user_grants(conn: AsyncConnection, user_id: int, gids: frozenset[int]) -> None:
    if gids:
        stmt = delete(admin_grant).where(
            admin_grant.c.user_id == user_id, admin_grant.c.gid.in_(sorted(gids))
        )
        await conn.execute(stmt)


async def delete_grant(conn: AsyncConnection, grant_id: int) -> None:
    await conn.execute(delete(admin_grant).where(admin_grant.c.id == grant_id))


async def delete_group_grants(conn: AsyncConnection, gid: int) -> None:
    await conn.execute(delete(admin_grant).where(admin_grant.c.gid == gid))
