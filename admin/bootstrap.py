"""Accounts made outside the web app: `unitedcron user add` and the demo's admin user."""

from __future__ import annotations

import asyncio

from admin import credentials
from admin.errors import Conflict
from admin.queries import audit, users
from admin.services.users import checked_name
from center.store.db import create_engine
from protocol.clock import now_us


async def add_user(
    db_url: str, name: str, password: str, superadmin: bool, *, reset: bool = False
) -> int:
    """Create a user and return its id; Invalid or Conflict name what is wrong.

    With `reset`, an existing user of that name gets the new password instead (the demo)."""
    name = checked_name(name)
    credentials.check_password_rules(password)
    password_hash = await asyncio.to_thread(credentials.hash_password, password)
    engine = create_engine(db_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            existing = await users.user_by_name(conn, name)
            if existing is not None and reset:
                values = {"password_hash": password_hash, "status": 1}
                await users.update_user(conn, existing["id"], values, now_us())
                return int(existing["id"])
            if existing is not None:
                raise Conflict(f"a user named {name!r} exists already", "name")
            user_id = await users.insert_user(conn, name, password_hash, superadmin, now_us())
            await audit.record(
                conn,
                at_us=now_us(),
                user_id=0,
                username="(command line)",
                action="user.create",
                object_type="user",
                object_id=user_id,
                after=await users.user_by_id(conn, user_id),
            )
        return user_id
    finally:
        await engine.dispose()
