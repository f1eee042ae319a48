"""The alerts' SQL: channels, remembered states, the notification outbox, the run cursor."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from center.alerts.model import (
    PENDING,
    AlertState,
    Channel,
    Note,
    StateKey,
    channel_from_row,
    notification_row,
    payload,
)
from center.errors import NotLeader
from center.store.db import is_mysql
from center.store.lease import LEASE_NAME, Lease
from center.tables import (
    alert_channel,
    alert_notification,
    alert_state,
    cron_group,
    leader_lease,
    ops_cursor,
)

RUNS_CURSOR = "alerts.runs"
FAIRNESS_WINDOW = 10  # due rows read per batch slot, to share the slots among channels
_STATE_COLS = ("is_open", "alerted", "last_key", "last_sent_us", "suppressed", "opened_us")


async def check_lease(conn: AsyncConnection, lease: Lease) -> None:
    """Go on only while `lease` is still the leader's (a read: it takes no lock)."""
    row = (
        await conn.execute(
            select(leader_lease.c.holder, leader_lease.c.epoch).where(
                leader_lease.c.name == LEASE_NAME
            )
        )
    ).first()
    if row is None or (row.holder, row.epoch) != (lease.holder, lease.epoch):
        raise NotLeader(lease.epoch)


async def load_channels(conn: AsyncConnection, *, enabled_only: bool = True) -> list[Channel]:
    query = select(alert_channel, cron_group.c.name.label("group_name")).outerjoin(
        cron_group, cron_group.c.id == alert_channel.c.gid
    )
    if enabled_only:
        query = query.where(alert_channel.c.status == 1)
    rows = (await conn.execute(query.order_by(alert_channel.c.id))).mappings()
    return [channel_from_row(dict(r)) for r in rows]


async def load_states(conn: AsyncConnection, channel_ids: list[int]) -> dict[StateKey, AlertState]:
    if not channel_ids:
        return {}
    query = select(alert_state).where(alert_state.c.channel_id.in_(channel_ids))
    out = {}
    for r in (await conn.execute(query)).mappings():
        out[(r["channel_id"], r["event"], r["subject"])] = AlertState(
            is_open=bool(r["is_open"]),
            alerted=bool(r["alerted"]),
            last_key=r["last_key"],
            last_sent_us=r["last_sent_us"],
            suppressed=r["suppressed"],
            opened_us=r["opened_us"],
        )
    return out


def _upsert(conn: AsyncConnection, table: Any, keys: list[str], cols: tuple[str, ...]) -> Any:
    if is_mysql(conn):
        my = mysql_dialect.insert(table)
        return my.on_duplicate_key_update({c: my.inserted[c] for c in cols})
    lite = sqlite_dialect.insert(table)
    return lite.on_conflict_do_update(index_elements=keys, set_={c: lite.excluded[c] for c in cols})


async def save_states(
    conn: AsyncConnection, changed: dict[StateKey, AlertState], now_us: int
) -> None:
    if not changed:
        return
    rows = [
        {
            "channel_id": cid,
            "event": event,
            "subject": subject[:64],
            "is_open": int(s.is_open),
            "alerted": int(s.alerted),
            "last_key": s.last_key[:64],
            "last_sent_us": s.last_sent_us,
            "suppressed": s.suppressed,
            "opened_us": s.opened_us,
            "updated_us": now_us,
        }
        for (cid, event, subject), s in changed.items()
    ]
    stmt = _upsert(
        conn, alert_state, ["channel_id", "event", "subject"], (*_STATE_COLS, "updated_us")
    )
    await conn.execute(stmt, rows)


async def queue_notes(conn: AsyncConnection, notes: list[Note], now_us: int) -> None:
    if notes:
        rows = [notification_row(n.channel.id, payload(n, now_us), now_us) for n in notes]
        await conn.execute(alert_notification.insert(), rows)


async def read_cursor(conn: AsyncConnection, name: str) -> int | None:
    value = await conn.scalar(select(ops_cursor.c.value).where(ops_cursor.c.name == name))
    return None if value is None else int(value)


async def write_cursor(conn: AsyncConnection, name: str, value: int, now_us: int) -> None:
    stmt = _upsert(conn, ops_cursor, ["name"], ("value", "updated_us"))
    await conn.execute(stmt, [{"name": name, "value": value, "updated_us": now_us}])


async def due_notifications(conn: AsyncConnection, now_us: int, limit: int) -> list[Any]:
    """Up to `limit` due notifications, taken in turns from each channel (oldest first within
    one): a channel with a thousand failing sends cannot starve another group's."""
    rows = await _due(conn, now_us, limit * FAIRNESS_WINDOW)
    by_channel: dict[int, list[Any]] = {}
    for row in rows:
        by_channel.setdefault(row["channel_id"], []).append(row)
    out: list[Any] = []
    while by_channel and len(out) < limit:
        for channel_id in list(by_channel):
            queue = by_channel[channel_id]
            out.append(queue.pop(0))
            if not queue:
                del by_channel[channel_id]
            if len(out) == limit:
                break
    return out


async def _due(conn: AsyncConnection, now_us: int, limit: int) -> list[Any]:
    query = (
        select(
            alert_notification,
            alert_channel.c.kind.label("channel_kind"),
            alert_channel.c.target,
            alert_channel.c.secret,
            alert_channel.c.mentions,
            alert_channel.c.language,
        )
        .join(alert_channel, alert_channel.c.id == alert_notification.c.channel_id)
        .where(
            alert_notification.c.status == PENDING,
            alert_notification.c.next_try_us <= now_us,
            alert_channel.c.status == 1,  # a channel turned off keeps its queue until back on
        )
        .order_by(alert_notification.c.next_try_us, alert_notification.c.id)
        .limit(limit)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def record_attempt(conn: AsyncConnection, note_id: int, values: dict[str, Any]) -> None:
    """Mark a notification sent, failed for good, or due again later (only while pending)."""
    await conn.execute(
        update(alert_notification)
        .where(alert_notification.c.id == note_id, alert_notification.c.status == PENDING)
        .values(**values)
    )
