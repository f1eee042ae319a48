"""Stored login-throttle states, one row per username or client address."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import upsert
from admin.throttle import ThrottleState
from center.tables import login_throttle


async def load_states(conn: AsyncConnection, keys: list[str]) -> dict[str, ThrottleState]:
    query = select(login_throttle).where(login_throttle.c.throttle_key.in_(keys))
    out = {key: ThrottleState() for key in keys}
    for row in (await conn.execute(query)).mappings():
        out[row["throttle_key"]] = ThrottleState(
            row["failures"], row["last_us"], row["blocked_until_us"]
        )
    return out


async def save_state(conn: AsyncConnection, key: str, state: ThrottleState) -> None:
    values = {
        "throttle_key": key,
        "failures": state.failures,
        "last_us": state.last_us,
        "blocked_until_us": state.blocked_until_us,
    }
    await upsert(conn, login_throttle, values, ("throttle_key",))


async def clear_state(conn: AsyncConnection, key: str) -> None:
    await conn.execute(delete(login_throttle).where(login_throttle.c.throttle_key == key))
