"""Runs out: planned rows, status moves and agents' reports, batched and idempotent."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from center import rollup
from center.runs import PlannedRun, planned_row
from center.store._prepared import prepare
from center.store._util import _chunks
from center.store.db import insert_ignore, is_mysql
from center.store.lease import Lease, _fence
from center.store.rollups import facts, fold, hold_writer, runs_before
from center.tables import (
    task_process,
)
from protocol import statuses


async def insert_planned(
    engine: AsyncEngine,
    lease: Lease,
    runs: list[PlannedRun],
    planned_through_us: int,
    now_us: int,
    *,
    missed: Sequence[tuple[PlannedRun, str]] = (),
    lost: Mapping[str, str] | None = None,
) -> None:
    """Write planned runs (and fires recorded as missed, and runs now known lost) and move the
    planning cursor, in one fenced transaction."""
    rows = [planned_row(r, lease.epoch, now_us) for r in runs]
    rows += [
        planned_row(r, lease.epoch, now_us) | {"status": statuses.MISSED, "reason": reason[:500]}
        for r, reason in missed
    ]
    async with engine.begin() as conn:
        values = {"updated_us": now_us}
        if planned_through_us:
            values["planned_through_us"] = planned_through_us
        await _fence(conn, lease, values)
        final = [facts(r) for r in rows if r["status"] in statuses.FINAL]
        before = await runs_before(conn, [*(f.runid for f in final), *(lost or {})])
        await _insert_rows(conn, rows)
        for runid, reason in (lost or {}).items():
            await conn.execute(
                update(task_process)
                .where(task_process.c.runid == runid, task_process.c.status.in_(statuses.ACTIVE))
                .values(status=statuses.LOST, reason=reason[:500], updated_us=now_us)
            )
        made_lost = rollup.moved_to(statuses.LOST, statuses.ACTIVE)
        await fold(
            conn,
            rollup.combine(
                rollup.changes(before, final, rollup.inserted),
                rollup.changes(before, [before[r] for r in lost or {} if r in before], made_lost),
            ),
            now_us,
        )


async def _insert_rows(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """INSERT IGNORE the rows, compiled once per column set and run on plain tuples (a planned
    row and a missed one differ by `reason`): SQLAlchemy's per-row parameter processing cost
    more than SQLite's insert."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(tuple(row), []).append(row)
    for columns, same in by_columns.items():
        key = "planned:" + ",".join(columns)
        stmt = prepare(conn.dialect, key, lambda: insert_ignore(task_process), columns)
        await stmt.run(conn, stmt.tuples(same))


# Built once (a dispatch tick moves its runs to `dispatched` with it); lists bound per call.
_SET_STATUS = (
    update(task_process)
    .where(
        task_process.c.runid.in_(bindparam("runids", expanding=True)),
        task_process.c.status.in_(bindparam("only_from", expanding=True)),
    )
    .values(status=bindparam("status"), updated_us=bindparam("updated_us"))
)
_SET_STATUS_WHY = _SET_STATUS.values(reason=bindparam("reason"))


async def set_run_status(
    engine: AsyncEngine,
    runids: list[str],
    status: str,
    now_us: int,
    *,
    only_from: frozenset[str] = statuses.ACTIVE,
    reason: str = "",
) -> None:
    """Move runs to `status` where they are still in one of `only_from`. One short
    transaction per chunk: a burst's status must not hold the writer lock for long."""
    values: dict[str, Any] = {"status": status, "updated_us": now_us, "only_from": list(only_from)}
    if reason:
        values["reason"] = reason[:500]
    stmt = _SET_STATUS_WHY if reason else _SET_STATUS
    counted = status in statuses.FINAL  # a move to a final status adds to the rollups
    for chunk in _chunks(runids):
        async with engine.begin() as conn:
            if counted:
                await hold_writer(conn)
                before = await runs_before(conn, chunk)
            await conn.execute(stmt, {**values, "runids": list(chunk)})
            if counted:
                moved = rollup.moved_to(status, only_from)
                await fold(conn, rollup.changes(before, before.values(), moved), now_us)


def _due_us(engine: AsyncEngine) -> Any:
    """When a run is due: its scheduled time, or later for a retry waiting out its backoff."""
    due = func.greatest if is_mysql(engine) else func.max
    return due(task_process.c.sched_us, task_process.c.due_us)


async def runs_waiting(engine: AsyncEngine, since_us: int) -> list[PlannedRun]:
    """Planned runs not yet sent (by a leader that died, or retries waiting for their time)."""
    async with engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    select(task_process).where(
                        and_(
                            task_process.c.status == statuses.PLANNED,
                            _due_us(engine) >= since_us,
                        )
                    )
                )
            )
            .mappings()
            .all()
        )
    return [_planned_run(r) for r in rows]


def _planned_run(r: Any) -> PlannedRun:
    return PlannedRun(
        runid=r["runid"],
        task_id=r["task_id"],
        aid=r["aid"],
        sched_us=r["sched_us"],
        attempt=r["attempt"],
        instance=r["instance"],
        trigger=r["trigger"],
        first_runid=r["first_runid"],
        parent_runid=r["parent_runid"],
        flow_runid=r["flow_runid"],
        due_us=r["due_us"],
        params=r["params"] or "",
        env=r["env_override"] or "",
    )


async def runs_in_flight(
    engine: AsyncEngine,
    aid: int | Collection[int],
    *,
    updated_before_us: int,
    status: frozenset[str],
    due_before_us: int | None = None,
) -> list[tuple[PlannedRun, str]]:
    """Runs of one agent (or of several: one read for a sweep of every agent) still
    `dispatched`/`running` in the store, last touched before a time (and, with
    `due_before_us`, due to start before a time: a run sent ahead waits for it)."""
    aids = [aid] if isinstance(aid, int) else sorted(aid)
    if not aids:
        return []
    query = select(task_process).where(
        task_process.c.aid == aids[0] if len(aids) == 1 else task_process.c.aid.in_(aids),
        task_process.c.status.in_(status),
        task_process.c.updated_us < updated_before_us,
    )
    if due_before_us is not None:
        query = query.where(_due_us(engine) < due_before_us)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [(_planned_run(r), r["status"]) for r in rows]


async def run_agents(engine: AsyncEngine, runids: list[str]) -> dict[str, int]:
    """runid -> the agent each of these runs was planned for (runs not found are left out)."""
    out: dict[str, int] = {}
    async with engine.connect() as conn:
        for chunk in _chunks(runids):
            rows = await conn.execute(
                select(task_process.c.runid, task_process.c.aid).where(
                    task_process.c.runid.in_(chunk)
                )
            )
            out.update((runid, aid) for runid, aid in rows)
    return out


async def reroute_run(engine: AsyncEngine, old_runid: str, run: PlannedRun, now_us: int) -> bool:
    """Move a run not yet sent to another agent (failover), under its new id; False if it was
    sent meanwhile, or if that agent already has this very run."""
    try:
        async with engine.begin() as conn:
            result = await conn.execute(
                update(task_process)
                .where(task_process.c.runid == old_runid, task_process.c.status == statuses.PLANNED)
                .values(
                    runid=run.runid, aid=run.aid, first_runid=run.first_runid, updated_us=now_us
                )
            )
    except IntegrityError:
        return False
    return result.rowcount == 1


async def expire_planned(engine: AsyncEngine, before_us: int, now_us: int) -> int:
    """Planned runs whose time (and grace) passed with no leader to send them: missed."""
    planned = frozenset({statuses.PLANNED})
    async with engine.begin() as conn:
        await hold_writer(conn)
        query = select(task_process.c.runid).where(
            task_process.c.status == statuses.PLANNED, _due_us(engine) < before_us
        )
        # By runid, the rows read and locked: a row planned meanwhile is left to the next turn.
        runids = list((await conn.scalars(query)).all())
        before = await runs_before(conn, runids)
        for chunk in _chunks(runids):
            await conn.execute(
                update(task_process)
                .where(task_process.c.runid.in_(chunk), task_process.c.status == statuses.PLANNED)
                .values(
                    status=statuses.MISSED,
                    updated_us=now_us,
                    reason="no center sent it within the dispatch grace",
                )
            )
        moved = rollup.moved_to(statuses.MISSED, planned)
        await fold(conn, rollup.changes(before, before.values(), moved), now_us)
    return sum(1 for f in before.values() if f.status == statuses.PLANNED)
