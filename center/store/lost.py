"""Runs of silent agents: found, then recorded lost with their retries in one fenced write."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center import rollup
from center.runs import PlannedRun, planned_row
from center.silence import IN_FLIGHT, InFlight
from center.store.db import insert_ignore
from center.store.lease import Lease, _fence
from center.store.rollups import fold, runs_before
from center.store.runs import _planned_run
from center.tables import agents, task_process
from protocol import statuses

SILENT_BATCH = 1000  # runs looked at per sweep; the next sweep takes the rest


async def in_flight_off_line(
    engine: AsyncEngine,
    connected: Collection[int],
    *,
    updated_before_us: int,
    limit: int = SILENT_BATCH,
) -> list[InFlight]:
    """`dispatched`/`running` runs of agents not in `connected`, untouched since a time, with
    their agent's last heartbeat (0 for an agent whose row is gone)."""
    heard = func.coalesce(agents.c.heart_beat_time, 0).label("heard_us")
    query = (
        select(task_process, heard)
        .select_from(task_process.outerjoin(agents, agents.c.id == task_process.c.aid))
        .where(
            task_process.c.status.in_(IN_FLIGHT),
            task_process.c.updated_us < updated_before_us,
        )
        .order_by(task_process.c.updated_us)
        .limit(limit)
    )
    if connected:
        query = query.where(task_process.c.aid.not_in(sorted(connected)))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [
        InFlight(_planned_run(r), r["status"], int(r["updated_us"]), int(r["heard_us"] or 0))
        for r in rows
    ]


async def record_lost(
    engine: AsyncEngine,
    lease: Lease,
    lost: Sequence[tuple[str, str, PlannedRun | None]],
    now_us: int,
) -> list[str]:
    """Mark each (runid, reason, retry) lost if it is still in flight, and write its retry
    only then, in one transaction fenced by the lease's epoch. Returns the runids it changed:
    a run that reported meanwhile, or one another sweep already took, is left alone."""
    made: list[str] = []
    async with engine.begin() as conn:
        await _fence(conn, lease, {"updated_us": now_us})
        before = await runs_before(conn, [runid for runid, _, _ in lost])
        for runid, reason, _ in lost:
            result = await conn.execute(
                update(task_process)
                .where(task_process.c.runid == runid, task_process.c.status.in_(IN_FLIGHT))
                .values(status=statuses.LOST, reason=reason[:500], updated_us=now_us)
            )
            if result.rowcount == 1:
                made.append(runid)
        done = frozenset(made)
        to_lost = rollup.moved_to(statuses.LOST, IN_FLIGHT)
        await fold(conn, rollup.changes(before, [before[r] for r in made], to_lost), now_us)
        rows = [planned_row(r, lease.epoch, now_us) for runid, _, r in lost if r and runid in done]
        if rows:
            await conn.execute(insert_ignore(task_process), rows)
    return made
