"""Alert channels (`alert_channel`), their remembered states and their notifications."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row, clamp_limit, in_scope
from center.store._util import new_id
from center.tables import alert_channel, alert_notification, alert_state, cron_group


async def list_channels(
    conn: AsyncConnection, gids: frozenset[int] | None, gid: int | None = None
) -> list[Row]:
    query = (
        select(alert_channel, cron_group.c.name.label("group_name"))
        .outerjoin(cron_group, cron_group.c.id == alert_channel.c.gid)
        .where(in_scope(alert_channel.c.gid, gids))
        .order_by(cron_group.c.name, alert_channel.c.name)
    )
    if gid is not None:
        query = query.where(alert_channel.c.gid == gid)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def channel_by_id(conn: AsyncConnection, channel_id: int) -> Row | None:
    query = (
        select(alert_channel, cron_group.c.name.label("group_name"))
        .outerjoin(cron_group, cron_group.c.id == alert_channel.c.gid)
        .where(alert_channel.c.id == channel_id)
    )
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None


async def channel_by_name(conn: AsyncConnection, gid: int, name: str) -> Row | None:
    query = select(alert_channel).where(alert_channel.c.gid == gid, alert_channel.c.name == name)
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None


async def insert_channel(conn: AsyncConnection, values: Row, now_us: int) -> int:
    stmt = insert(alert_channel).values(**values, create_time=now_us, update_time=now_us)
    result = await conn.execute(stmt)
    return new_id(result)


async def update_channel(conn: AsyncConnection, channel_id: int, values: Row, now_us: int) -> None:
    stmt = update(alert_channel).where(alert_channel.c.id == channel_id)
    await conn.execute(stmt.values(**values, update_time=now_us))


async def delete_channel(conn: AsyncConnection, channel_id: int, now_us: int) -> None:
    """The channel and what the leader remembers of it; its pending notifications fail."""
    await conn.execute(delete(alert_channel).where(alert_channel.c.id == channel_id))
    await conn.execute(delete(alert_state).where(alert_state.c.channel_id == channel_id))
    await conn.execute(
        update(alert_notification)
        .where(
            alert_notification.c.channel_id == channel_id,
            alert_notification.c.status == "pending",
        )
        .values(status="failed", error="the channel was deleted", sent_us=now_us)
    )


async def group_channel_ids(conn: AsyncConnection, gid: int) -> list[int]:
    rows = await conn.execute(select(alert_channel.c.id).where(alert_channel.c.gid == gid))
    return [int(channel_id) for (channel_id,) in rows.all()]


async def open_states(conn: AsyncConnection, channel_id: int) -> list[Row]:
    query = (
        select(alert_state)
        .where(alert_state.c.channel_id == channel_id, alert_state.c.is_open == 1)
        .order_by(alert_state.c.opened_us.desc())
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def notifications(conn: AsyncConnection, channel_id: int, limit: int = 50) -> list[Row]:
    query = (
        select(alert_notification)
        .where(alert_notification.c.channel_id == channel_id)
        .order_by(alert_notification.c.id.desc())
        .limit(clamp_limit(limit))
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def insert_notification(conn: AsyncConnection, values: Row) -> int:
    result = await conn.execute(insert(alert_notification).values(**values))
    return new_id(result)


async def notification_by_id(conn: AsyncConnection, note_id: int) -> Row | None:
    query = select(alert_notification).where(alert_notification.c.id == note_id)
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None
