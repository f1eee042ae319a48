"""Workflows in and out: their definitions, their runs, and the node runs of each flow run."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center import rollup
from center.dag import Edge, Graph
from center.flow_nodes import RunRow
from center.runs import PlannedRun, planned_row
from center.store._util import _chunks
from center.store.db import insert_ignore, read_snapshot
from center.store.lease import Lease, _fence
from center.store.rollups import facts, fold, runs_before
from center.tables import task_process, workflow, workflow_edge, workflow_node, workflow_run
from protocol import statuses
from protocol.vocabulary import FlowStatus, RuleStatus, Trigger


@dataclass(frozen=True, slots=True, kw_only=True)
class Workflow:
    """A `workflow` row with its graph."""

    id: int
    gid: int
    name: str
    rule: str
    timezone: str
    status: int
    overlap: str
    misfire: str
    misfire_window_s: int
    error: str
    update_time: int
    graph: Graph
    calendar: str = ""
    calendar_mode: str = "only"
    calendar_fallback: str = "skip"

    @property
    def enabled(self) -> bool:
        return self.status == RuleStatus.ENABLED


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowRun:
    """A `workflow_run` row; `generations` says which runs of each node count (re-runs)."""

    id: str
    workflow_id: int
    sched_us: int
    trigger: str = Trigger.SCHEDULE
    status: str = FlowStatus.RUNNING
    reason: str = ""
    generations: Mapping[int, int] = field(default_factory=dict)
    params: str = ""  # a run now's extras for nodes whose rule allows them
    env: str = ""
    user_id: int = 0
    created_us: int = 0


async def load_workflows(engine: AsyncEngine) -> list[Workflow]:
    """Every workflow not deleted, with its nodes and edges, as they stood at one instant."""
    async with read_snapshot(engine) as conn:
        rows = (
            (await conn.execute(select(workflow).where(workflow.c.status != RuleStatus.DELETED)))
            .mappings()
            .all()
        )
        nodes: dict[int, dict[int, str]] = defaultdict(dict)
        for wid, task_id, join in await conn.execute(select(workflow_node)):
            nodes[wid][task_id] = join
        edges: dict[int, list[Edge]] = defaultdict(list)
        for wid, parent, child, when in await conn.execute(select(workflow_edge)):
            edges[wid].append(Edge(parent, child, when))
    return [
        Workflow(
            id=r["id"],
            gid=r["gid"],
            name=r["name"],
            rule=r["rule"],
            timezone=r["timezone"],
            status=r["status"],
            overlap=r["overlap"],
            misfire=r["misfire"],
            misfire_window_s=r["misfire_window_s"],
            error=r["error"],
            update_time=r["update_time"],
            graph=Graph(nodes[r["id"]], tuple(edges[r["id"]])),
            calendar=r["calendar"],
            calendar_mode=r["calendar_mode"],
            calendar_fallback=r["calendar_fallback"],
        )
        for r in rows
    ]


# Built once: the flows loop asks at every step (twice a second, and at each node's end).
_STAMP = select(func.coalesce(func.max(workflow.c.update_time), 0), func.count()).select_from(
    workflow
)


async def workflows_stamp(engine: AsyncEngine) -> tuple[int, int]:
    """Changes whenever a workflow is saved (its update_time is bumped) or removed."""
    async with engine.connect() as conn:
        newest, count = (await conn.execute(_STAMP)).one()
    return int(newest), int(count)


async def set_workflow_error(engine: AsyncEngine, workflow_id: int, error: str) -> None:
    """Why a workflow cannot be planned ("" clears it); never bumps update_time."""
    async with engine.begin() as conn:
        await conn.execute(
            update(workflow).where(workflow.c.id == workflow_id).values(error=error[:500])
        )


async def last_scheduled(engine: AsyncEngine) -> dict[int, int]:
    """Each workflow's newest scheduled (or caught-up) flow run: where its schedule resumes."""
    query = (
        select(workflow_run.c.workflow_id, func.max(workflow_run.c.sched_us))
        .where(workflow_run.c.trigger.in_((Trigger.SCHEDULE, Trigger.MISFIRE)))
        .group_by(workflow_run.c.workflow_id)
    )
    async with engine.connect() as conn:
        return {wid: int(sched) for wid, sched in await conn.execute(query)}


def _flow_run(r: Any) -> FlowRun:
    try:
        generations = {int(k): int(v) for k, v in json.loads(r["reruns"] or "{}").items()}
    except (ValueError, AttributeError):
        generations = {}
    return FlowRun(
        id=r["id"],
        workflow_id=r["workflow_id"],
        sched_us=r["sched_us"],
        trigger=r["trigger"],
        status=r["status"],
        reason=r["reason"],
        generations=generations,
        params=r["params"],
        env=r["env"],
        user_id=r["user_id"],
        created_us=r["created_us"],
    )


async def open_flow_runs(engine: AsyncEngine) -> list[FlowRun]:
    """Flow runs running or queued, oldest first."""
    query = (
        select(workflow_run)
        .where(workflow_run.c.status.in_((FlowStatus.RUNNING, FlowStatus.QUEUED)))
        .order_by(workflow_run.c.sched_us, workflow_run.c.id)
    )
    async with engine.connect() as conn:
        return [_flow_run(r) for r in (await conn.execute(query)).mappings()]


async def find_flow_run(engine: AsyncEngine, flow_runid: str) -> FlowRun | None:
    async with engine.connect() as conn:
        query = select(workflow_run).where(workflow_run.c.id == flow_runid)
        row = (await conn.execute(query)).mappings().first()
    return _flow_run(row) if row is not None else None


async def node_rows(engine: AsyncEngine, flow_runids: Sequence[str]) -> dict[str, list[RunRow]]:
    """The runs of each flow run's nodes."""
    c = task_process.c
    out: dict[str, list[RunRow]] = defaultdict(list)
    async with engine.connect() as conn:
        for chunk in _chunks(list(flow_runids)):
            columns = (c.task_id, c.status, c.attempt, c.first_runid, c.sched_us, c.updated_us)
            query = select(c.flow_runid, *columns).where(c.flow_runid.in_(chunk))
            for row in await conn.execute(query):
                out[row[0]].append(RunRow(*row[1:]))
    return out


def flow_run_row(run: FlowRun, epoch: int, now_us: int) -> dict[str, Any]:
    return {
        "id": run.id,
        "workflow_id": run.workflow_id,
        "sched_us": run.sched_us,
        "trigger": run.trigger,
        "status": run.status,
        "reason": run.reason[:500],
        "reruns": json.dumps({str(k): v for k, v in run.generations.items()}),
        "params": run.params,
        "env": run.env,
        "user_id": run.user_id,
        "epoch": epoch,
        "created_us": now_us,
        "updated_us": now_us,
        "end_us": now_us if run.status in (FlowStatus.SKIPPED,) else 0,
    }


async def insert_flow_runs(
    engine: AsyncEngine, lease: Lease, runs: Sequence[FlowRun], now_us: int
) -> None:
    """New flow runs, fenced; a run whose id exists already (another leader's) is kept."""
    if not runs:
        return
    async with engine.begin() as conn:
        await _fence(conn, lease, {"updated_us": now_us})
        await conn.execute(
            insert_ignore(workflow_run), [flow_run_row(r, lease.epoch, now_us) for r in runs]
        )


async def update_flow_run(
    engine: AsyncEngine,
    lease: Lease,
    flow_runid: str,
    now_us: int,
    *,
    status: str,
    reason: str = "",
    generations: Mapping[int, int] | None = None,
    only_from: tuple[str, ...] = (FlowStatus.RUNNING, FlowStatus.QUEUED),
) -> bool:
    """Move a flow run on (ended, promoted from the queue, re-run), fenced; False when it was
    no longer in one of `only_from`."""
    values: dict[str, Any] = {"status": status, "reason": reason[:500], "updated_us": now_us}
    values["end_us"] = 0 if status in (FlowStatus.RUNNING, FlowStatus.QUEUED) else now_us
    if generations is not None:
        values["reruns"] = json.dumps({str(k): v for k, v in generations.items()})
    async with engine.begin() as conn:
        await _fence(conn, lease, {"updated_us": now_us})
        result = await conn.execute(
            update(workflow_run)
            .where(and_(workflow_run.c.id == flow_runid, workflow_run.c.status.in_(only_from)))
            .values(**values)
        )
    return bool(result.rowcount)


async def insert_skipped(
    engine: AsyncEngine, lease: Lease, runs: Sequence[tuple[PlannedRun, str]], now_us: int
) -> None:
    """Rows for nodes that will not start in a flow run, with the reason, fenced."""
    if not runs:
        return
    rows = [
        planned_row(run, lease.epoch, now_us)
        | {"status": statuses.SKIPPED, "reason": reason[:500], "end": now_us}
        for run, reason in runs
    ]
    async with engine.begin() as conn:
        await _fence(conn, lease, {"updated_us": now_us})
        before = await runs_before(conn, [r["runid"] for r in rows])
        await conn.execute(insert_ignore(task_process), rows)
        writes = [facts(r) for r in rows]
        await fold(conn, rollup.changes(before, writes, rollup.inserted), now_us)
