"""One's own TOTP second factor, from the account page: enrol an app, or remove it."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncEngine

from admin import totp
from admin.actor import Actor
from admin.errors import Conflict, Invalid
from admin.queries import users
from admin.services import audited
from protocol.clock import now_us


async def enrol(engine: AsyncEngine, keys: list[str], actor: Actor, secret: str, code: str) -> None:
    """Keep `secret` (sealed with `keys`) once `code` shows the app holds it."""
    if not totp.is_secret(secret):
        raise Invalid("secret", "the form expired: please reload the page")
    step = totp.accepted_step(secret, code, time.time(), 0)
    if step is None:
        raise Invalid("code", "wrong or expired code")
    async with engine.begin() as conn:
        row = await users.user_by_id(conn, actor.user.id)
        if row is None or row["source"] != "local":
            raise Conflict("only local accounts have a TOTP second factor here")
        values = {"totp_secret": totp.seal(secret, keys), "totp_last_step": step}
        await users.update_user(conn, actor.user.id, values, now_us())
        target = ("user", actor.user.id, None)
        await audited(conn, actor, now_us(), "user.totp_enrol", target, after={"enrolled": True})


async def remove(engine: AsyncEngine, actor: Actor) -> None:
    """Forget one's TOTP app; refused while an admin requires TOTP of this account."""
    async with engine.begin() as conn:
        row = await users.user_by_id(conn, actor.user.id)
        if row is None or row["totp_required"]:
            raise Conflict("TOTP is required for your account: ask an admin to reset it")
        values = {"totp_secret": "", "totp_last_step": 0}
        await users.update_user(conn, actor.user.id, values, now_us())
        target = ("user", actor.user.id, None)
        await audited(conn, actor, now_us(), "user.totp_remove", target, after={"enrolled": False})
