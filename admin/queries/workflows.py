"""Workflows (`workflow`, `workflow_node`, `workflow_edge`), their flow runs and node runs."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Select, and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row, clamp_limit, in_scope
from center.store._util import new_id
from center.tables import (
    agents,
    center_command,
    cron_group,
    crontab,
    task_process,
    workflow,
    workflow_edge,
    workflow_node,
    workflow_run,
)
from protocol.vocabulary import CommandKind, RuleStatus

DELETED = RuleStatus.DELETED
_RUN_COLUMNS = [c for c in task_process.c if c.name != "result"]


def _base_query() -> Select[Any]:
    nodes = (
        select(func.count())
        .where(workflow_node.c.workflow_id == workflow.c.id)
        .scalar_subquery()
        .label("node_count")
    )
    return select(workflow, cron_group.c.name.label("group_name"), nodes).outerjoin(
        cron_group, cron_group.c.id == workflow.c.gid
    )


async def list_workflows(
    conn: AsyncConnection, gids: frozenset[int] | None, *, gid: int | None = None
) -> list[Row]:
    """Workflows the scope sees (never deleted ones), by name, with their node count."""
    query = _base_query().where(workflow.c.status != DELETED, in_scope(workflow.c.gid, gids))
    if gid is not None:
        query = query.where(workflow.c.gid == gid)
    query = query.order_by(workflow.c.name, workflow.c.id).limit(clamp_limit(1000))
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def workflow_by_id(conn: AsyncConnection, workflow_id: int) -> Row | None:
    """The workflow (deleted ones too) with `nodes` and `edges` in the API's shapes."""
    found = (await conn.execute(_base_query().where(workflow.c.id == workflow_id))).mappings()
    row = found.first()
    if row is None:
        return None
    out = dict(row)
    nodes = select(workflow_node.c.task_id, workflow_node.c.join, crontab.c.name).outerjoin(
        crontab, crontab.c.id == workflow_node.c.task_id
    )
    query = nodes.where(workflow_node.c.workflow_id == workflow_id).order_by(
        workflow_node.c.task_id
    )
    out["nodes"] = [
        {"task_id": t, "join": j, "name": n or ""} for t, j, n in await conn.execute(query)
    ]
    edges = select(
        workflow_edge.c.parent_task_id, workflow_edge.c.child_task_id, workflow_edge.c.when
    ).where(workflow_edge.c.workflow_id == workflow_id)
    out["edges"] = [
        {"parent_task_id": p, "child_task_id": c, "when": w}
        for p, c, w in await conn.execute(
            edges.order_by(workflow_edge.c.parent_task_id, workflow_edge.c.child_task_id)
        )
    ]
    return out


async def insert_workflow(conn: AsyncConnection, values: Row, now_us: int) -> int:
    stmt = insert(workflow).values(**values, create_time=now_us, update_time=now_us)
    return new_id(await conn.execute(stmt))


async def update_workflow(
    conn: AsyncConnection, workflow_id: int, values: Row, now_us: int
) -> None:
    """Change columns; update_time always moves, so the center reloads the workflow."""
    stmt = update(workflow).where(workflow.c.id == workflow_id)
    await conn.execute(stmt.values(**values, update_time=now_us))


async def set_graph(
    conn: AsyncConnection, workflow_id: int, nodes: list[Row], edges: list[Row]
) -> None:
    """Replace the workflow's nodes and edges (rows in the API's shapes)."""
    await conn.execute(delete(workflow_node).where(workflow_node.c.workflow_id == workflow_id))
    await conn.execute(delete(workflow_edge).where(workflow_edge.c.workflow_id == workflow_id))
    if nodes:
        rows = [
            {"workflow_id": workflow_id, "task_id": n["task_id"], "join": n["join"]} for n in nodes
        ]
        await conn.execute(insert(workflow_node), rows)
    if edges:
        await conn.execute(insert(workflow_edge), [{"workflow_id": workflow_id} | e for e in edges])


async def rules_for_nodes(conn: AsyncConnection, task_ids: list[int]) -> dict[int, Row]:
    """Group, name, daemon flag and status of the given rules (deleted ones too)."""
    if not task_ids:
        return {}
    c = crontab.c
    query = select(c.id, c.gid, c.name, c.is_daemon, c.status).where(
        c.id.in_(sorted(set(task_ids)))
    )
    return {r["id"]: dict(r) for r in (await conn.execute(query)).mappings()}


async def workflows_of_rule(
    conn: AsyncConnection, task_id: int, gids: frozenset[int] | None
) -> list[Row]:
    """The live workflows the rule is a node of (for the rule's page)."""
    query = (
        select(workflow.c.id, workflow.c.name, workflow.c.status)
        .join(workflow_node, workflow_node.c.workflow_id == workflow.c.id)
        .where(
            workflow_node.c.task_id == task_id,
            workflow.c.status != DELETED,
            in_scope(workflow.c.gid, gids),
        )
        .order_by(workflow.c.name)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


# ---------------------------------------------------------------- flow runs


async def flow_runs(
    conn: AsyncConnection, workflow_id: int, *, before_us: int | None = None, limit: int = 20
) -> list[Row]:
    """A workflow's flow runs, newest first; the page after `before_us` (a sched_us)."""
    query = select(workflow_run).where(workflow_run.c.workflow_id == workflow_id)
    if before_us is not None:
        query = query.where(workflow_run.c.sched_us < before_us)
    query = query.order_by(workflow_run.c.sched_us.desc()).limit(clamp_limit(limit))
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def flow_run_by_id(conn: AsyncConnection, flow_runid: str) -> Row | None:
    query = select(workflow_run).where(workflow_run.c.id == flow_runid)
    found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None


async def node_runs(conn: AsyncConnection, flow_runids: list[str]) -> dict[str, list[Row]]:
    """The runs (without output) of each flow run's nodes, oldest first, with the agent's name."""
    out: dict[str, list[Row]] = defaultdict(list)
    if not flow_runids:
        return out
    query = (
        select(*_RUN_COLUMNS, agents.c.name.label("agent_name"))
        .outerjoin(agents, agents.c.id == task_process.c.aid)
        .where(task_process.c.flow_runid.in_(sorted(set(flow_runids))))
        .order_by(task_process.c.sched_us, task_process.c.id)
    )
    for row in (await conn.execute(query)).mappings():
        out[row["flow_runid"]].append(dict(row))
    return out


async def pending_command(conn: AsyncConnection, kind: str, runid: str, task_id: int) -> Row | None:
    """A command of this kind about this flow run and node that the leader has not taken yet."""
    c = center_command.c
    query = select(center_command).where(
        c.kind == kind, c.runid == runid, c.task_id == task_id, c.status == "pending"
    )
    found = (await conn.execute(query.limit(1))).mappings().first()
    return dict(found) if found else None


async def commands_of_workflow(
    conn: AsyncConnection, workflow_id: int, limit: int = 10
) -> list[Row]:
    """The newest run-now and re-run commands about a workflow and its flow runs."""
    c = center_command.c
    about = or_(
        and_(c.kind == CommandKind.FLOW_RUN, c.task_id == workflow_id),
        # Flow run ids are "f<workflow>-<µs>": the dash keeps f1- from matching f12-.
        and_(c.kind == CommandKind.FLOW_RERUN, c.runid.like(f"f{workflow_id}-%")),
    )
    query = select(center_command).where(about).order_by(c.id.desc()).limit(limit)
    return [dict(r) for r in (await conn.execute(query)).mappings()]
