"""A deleted group leaves nothing a later group could inherit: its id is never given again and
its alert channels (with their secrets) go with it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from admin.actor import Actor
from admin.permissions import User
from admin.services.alerts import create_channel
from admin.services.groups import create_group, delete_group
from center.alerts.targets import parse_networks
from center.tables import alert_channel

ROOT = Actor(User(id=1, name="root", superadmin=True))


async def test_a_deleted_groups_id_and_channels_are_not_inherited(engine: AsyncEngine) -> None:
    """Group two is created after group one (the newest) was deleted: it gets a new id, and
    none of group one's channels exist any more, on SQLite as on MySQL."""
    first = await create_group(engine, ROOT, {"name": "one"})
    await create_channel(
        engine,
        ROOT,
        {
            "gid": first["id"],
            "name": "ops",
            "kind": "webhook",
            "target": "http://127.0.0.1:9/x",
            "events": "run_failed",
        },
        parse_networks("127.0.0.1/32"),  # a loopback target needs the operator's consent
    )
    await delete_group(engine, ROOT, first["id"])
    second = await create_group(engine, ROOT, {"name": "two"})
    assert second["id"] > first["id"]
    async with engine.connect() as conn:
        left = (await conn.execute(select(alert_channel.c.id))).all()
    assert left == []
