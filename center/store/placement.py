"""Fleet services' rows: the placement of each instance (written by the leader, fenced by its
epoch), and the few reads the drain needs."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center.placement import Slot
from center.store.db import insert_ignore
from center.store.lease import Lease, _fence
from center.tables import agents, daemon_placement, task_process
from protocol import statuses


async def load_placement(engine: AsyncEngine) -> dict[int, list[Slot]]:
    """task_id -> its slots, as the last leader left them."""
    query = select(daemon_placement).order_by(
        daemon_placement.c.task_id, daemon_placement.c.instance
    )
    out: dict[int, list[Slot]] = {}
    async with engine.connect() as conn:
        for row in (await conn.execute(query)).mappings():
            slot = Slot(row["instance"], row["aid"], row["reason"], row["since_us"])
            out.setdefault(row["task_id"], []).append(slot)
    return out


async def save_placement(
    engine: AsyncEngine,
    lease: Lease,
    changed: Mapping[int, list[Slot]],
    now_us: int,
) -> None:
    """Replace the rows of each rule in `changed` (an empty list: the rule is no service any
    more) in one transaction, while we hold the lease's epoch."""
    rows = [
        {
            "task_id": task_id,
            "instance": s.instance,
            "aid": s.aid,
            "reason": s.reason[:200],
            "since_us": s.since_us,
            "epoch": lease.epoch,
        }
        for task_id, slots in changed.items()
        for s in slots
    ]
    async with engine.begin() as conn:
        await _fence(conn, lease, {"updated_us": now_us})
        await conn.execute(
            delete(daemon_placement).where(daemon_placement.c.task_id.in_(list(changed)))
        )
        if rows:
            await conn.execute(insert_ignore(daemon_placement), rows)


async def busy_runs(engine: AsyncEngine, aid: int) -> int:
    """Runs still in flight on an agent (a drain waits for them)."""
    query = select(func.count()).where(
        task_process.c.aid == aid, task_process.c.status.in_(sorted(statuses.ACTIVE))
    )
    async with engine.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def finish_drain(engine: AsyncEngine, aid: int, now_us: int) -> bool:
    """A drained agent ends disabled (status 0) with its drain flag cleared."""
    stmt = (
        update(agents)
        .where(and_(agents.c.id == aid, agents.c.drain == 1))
        .values(status=0, drain=0, update_time=now_us)
    )
    async with engine.begin() as conn:
        return bool((await conn.execute(stmt)).rowcount)
