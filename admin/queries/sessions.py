"""Browser sessions and API tokens, both found by the SHA-256 of the secret the client holds."""

from __future__ import annotations

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row
from center.store._util import new_id
from center.tables import admin_session, api_token


async def insert_session(conn: AsyncConnection, row: Row) -> None:
    await conn.execute(insert(admin_session).values(**row))


async def set_stage(conn: AsyncConnection, id_hash: str, stage: str) -> None:
    stmt = update(admin_session).where(admin_session.c.id_hash == id_hash)
    await conn.execute(stmt.values(stage=stage))


async def session_by_hash(conn: AsyncConnection, id_hash: str) -> Row | None:
    query = select(admin_session).where(admin_session.c.id_hash == id_hash)
    found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None


async def touch_session(conn: AsyncConnection, id_hash: str, now_us: int) -> None:
    stmt = update(admin_session).where(admin_session.c.id_hash == id_hash)
    await conn.execute(stmt.values(seen_us=now_us))


async def delete_session(conn: AsyncConnection, id_hash: str) -> None:
    await conn.execute(delete(admin_session).where(admin_session.c.id_hash == id_hash))


async def delete_user_sessions(conn: AsyncConnection, user_id: int, keep_hash: str = "") -> None:
    """End every session of the user but `keep_hash` (after a password change)."""
    await conn.execute(
        delete(admin_session).where(
            admin_session.c.user_id == user_id, admin_session.c.id_hash != keep_hash
        )
    )


async def purge_sessions(conn: AsyncConnection, now_us: int, idle_us: int) -> None:
    """Forget sessions past their end or idle too long."""
    await conn.execute(
        delete(admin_session).where(
            or_(
                admin_session.c.expires_us <= now_us,
                admin_session.c.seen_us <= now_us - idle_us,
            )
        )
    )


# ---------------------------------------------------------------- API tokens

_TOKEN_PUBLIC = [c for c in api_token.c if c.name != "token_hash"]


async def insert_token(conn: AsyncConnection, row: Row) -> int:
    result = await conn.execute(insert(api_token).values(**row))
    return new_id(result)


async def token_by_hash(conn: AsyncConnection, token_hash: str) -> Row | None:
    query = select(*_TOKEN_PUBLIC).where(api_token.c.token_hash == token_hash)
    found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None


async def token_by_id(conn: AsyncConnection, token_id: int) -> Row | None:
    query = select(*_TOKEN_PUBLIC).where(api_token.c.id == token_id)
    found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None


async def list_tokens(conn: AsyncConnection, user_id: int | None) -> list[Row]:
    """Tokens of one user (None: of everyone), newest first; hashes never leave the table."""
    query = select(*_TOKEN_PUBLIC).order_by(api_token.c.id.desc())
    if user_id is not None:
        query = query.where(api_token.c.user_id == user_id)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def revoke_token(conn: AsyncConnection, token_id: int, now_us: int) -> None:
    stmt = update(api_token).where(api_token.c.id == token_id, api_token.c.revoked_us == 0)
    await conn.execute(stmt.values(revoked_us=now_us))


async def revoke_user_tokens(conn: AsyncConnection, user_id: int, now_us: int) -> None:
    stmt = update(api_token).where(api_token.c.user_id == user_id, api_token.c.revoked_us == 0)
    await conn.execute(stmt.values(revoked_us=now_us))


async def touch_token(conn: AsyncConnection, token_id: int, now_us: int) -> None:
    stmt = update(api_token).where(api_token.c.id == token_id)
    await conn.execute(stmt.values(last_used_us=now_us))
