"""The leader lease: acquire, renew, release, and the epoch fence inside writes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from center.errors import NotLeader
from center.store.db import insert_ignore
from center.tables import (
    leader_lease,
)

LEASE_NAME = "leader"


@dataclass(frozen=True, slots=True)
class Lease:
    holder: str
    epoch: int
    planned_through_us: int


async def acquire_lease(engine: AsyncEngine, holder: str, now_us: int, ttl_us: int) -> Lease | None:
    """Take the lease if it is free or expired; a taken lease always gets a new, higher epoch."""
    # The row's creation in a transaction of its own: INSERT IGNORE takes a shared lock on
    # the existing row, and holding it into the UPDATE deadlocks with the leader's fence.
    async with engine.begin() as conn:
        await conn.execute(
            insert_ignore(leader_lease).values(name=LEASE_NAME, epoch=0, expires_us=0)
        )
    async with engine.begin() as conn:
        result = await conn.execute(
            update(leader_lease)
            .where(leader_lease.c.name == LEASE_NAME, leader_lease.c.expires_us < now_us)
            .values(
                holder=holder,
                epoch=leader_lease.c.epoch + 1,
                expires_us=now_us + ttl_us,
                updated_us=now_us,
            )
        )
        if result.rowcount != 1:
            return None
        row = (
            await conn.execute(
                select(leader_lease.c.epoch, leader_lease.c.planned_through_us).where(
                    leader_lease.c.name == LEASE_NAME
                )
            )
        ).one()
    return Lease(holder, int(row.epoch), int(row.planned_through_us))


# Built once, the SET columns given as parameters: a renewal each second and a fence in each
# plan write made it anew, and making it (and its cache key) cost more than running it.
_FENCE = update(leader_lease).where(
    leader_lease.c.name == bindparam("f_name"),
    leader_lease.c.holder == bindparam("f_holder"),
    leader_lease.c.epoch == bindparam("f_epoch"),
)


async def _fenced_update(conn: AsyncConnection, lease: Lease, values: dict[str, int]) -> int:
    """Set `values` on the lease row while it is still ours; how many rows (1 or 0)."""
    params = {"f_name": LEASE_NAME, "f_holder": lease.holder, "f_epoch": lease.epoch}
    return (await conn.execute(_FENCE, params | values)).rowcount


async def renew_lease(
    engine: AsyncEngine, lease: Lease, now_us: int, ttl_us: int, planned_through_us: int = 0
) -> bool:
    """Extend the lease; also move the cursor past ticks that planned nothing."""
    values = {"expires_us": now_us + ttl_us, "updated_us": now_us}
    if planned_through_us:
        values["planned_through_us"] = planned_through_us
    async with engine.begin() as conn:
        return await _fenced_update(conn, lease, values) == 1


async def release_lease(engine: AsyncEngine, lease: Lease) -> None:
    """On a clean shutdown, let a standby take over at once instead of after the TTL."""
    async with engine.begin() as conn:
        await _fenced_update(conn, lease, {"expires_us": 0})


async def _fence(conn: AsyncConnection, lease: Lease, values: dict[str, int]) -> None:
    """Inside a write transaction: go on only while we still hold the lease's epoch."""
    if await _fenced_update(conn, lease, values) != 1:
        raise NotLeader(lease.epoch)
