"""Workflows: list, create and edit with their graph in one transaction, pause, delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin import flowfields
from admin.actor import Actor
from admin.errors import Forbidden, Invalid, NotFound
from admin.flowfields import NodeRule
from admin.permissions import Action, action_for_changes
from admin.queries import groups, workflows
from admin.services import audited
from admin.timing_preview import PreviewAsk, preview
from center.store.calendars import load_calendars
from i18n.marks import N_
from protocol.clock import now_us
from protocol.vocabulary import RuleStatus

ENABLED, PAUSED, DELETED = RuleStatus.ENABLED, RuleStatus.PAUSED, RuleStatus.DELETED
GRAPH_FIELDS = ("nodes", "edges")


async def list_workflows(
    engine: AsyncEngine, actor: Actor, *, gid: int | None = None
) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return await workflows.list_workflows(conn, actor.scope, gid=gid)


async def visible(
    conn: AsyncConnection, actor: Actor, workflow_id: int, action: Action
) -> dict[str, Any]:
    """The workflow with its graph, if the actor may do `action` on it; NotFound otherwise."""
    row = await workflows.workflow_by_id(conn, workflow_id)
    if row is None or row["status"] == DELETED:
        raise NotFound("no such workflow")
    actor.require(action, row["gid"], N_("workflow"))
    return row


async def get_workflow(engine: AsyncEngine, actor: Actor, workflow_id: int) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await visible(conn, actor, workflow_id, Action.VIEW)


async def fire_times(engine: AsyncEngine, row: dict[str, Any], count: int = 5) -> dict[str, Any]:
    """The workflow's next fire times (H seeded by its id, its calendar) and the calendar's
    warning; none for a workflow started by hand only."""
    if not row["rule"]:
        return {"fires": [], "warning": ""}
    ask = PreviewAsk(
        rule=row["rule"],
        timezone=row["timezone"],
        calendar=row["calendar"],
        calendar_mode=row["calendar_mode"],
        calendar_fallback=row["calendar_fallback"],
        count=count,
        task_id=row["id"],
    )
    async with engine.connect() as conn:
        calendars = await load_calendars(conn, row["gid"])
    try:
        return preview(ask, row["gid"], calendars, now_us())
    except Invalid as exc:
        return {"fires": [], "warning": f"{exc.field}: {exc.reason}"}


async def workflows_of_rule(
    engine: AsyncEngine, actor: Actor, task_id: int
) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return await workflows.workflows_of_rule(conn, task_id, actor.scope)


async def _group(conn: AsyncConnection, actor: Actor, gid: Any) -> int:
    if gid is None:
        raise Invalid("gid", "is required: the group the workflow belongs to")
    if not isinstance(gid, int) or isinstance(gid, bool):
        raise Invalid("gid", "give the id of a group")
    if not actor.can(Action.VIEW, gid) or await groups.group_by_id(conn, gid) is None:
        raise Invalid("gid", f"no such group: {gid}")
    if not actor.can(Action.EDIT, gid):
        raise Forbidden("you are not an admin of that group")
    return gid


async def _checked(
    conn: AsyncConnection, actor: Actor, values: dict[str, Any], workflow_id: int = 0
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The columns and the graph to store, after the center's own checks."""
    gid = await _group(conn, actor, values.get("gid"))
    columns = flowfields.checked(values, await load_calendars(conn, gid), gid, workflow_id)
    graph = flowfields.graph_from(values.get("nodes", []), values.get("edges", []))
    found = await workflows.rules_for_nodes(conn, list(graph.nodes))
    rules = {
        t: NodeRule(r["gid"], r["name"], bool(r["is_daemon"]), r["status"] == DELETED)
        for t, r in found.items()
    }
    flowfields.check_nodes(graph, gid, rules)
    return columns | {"gid": gid}, flowfields.as_api(graph)


def _stored_graph(row: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    nodes = [{"task_id": n["task_id"], "join": n["join"]} for n in row["nodes"]]
    return {"nodes": nodes, "edges": row["edges"]}


async def create_workflow(
    engine: AsyncEngine, actor: Actor, values: dict[str, Any]
) -> dict[str, Any]:
    """A new workflow and its graph, in one transaction; needs the admin role in `gid`."""
    now = now_us()
    async with engine.begin() as conn:
        columns, graph = await _checked(conn, actor, values)
        workflow_id = await workflows.insert_workflow(conn, columns | {"error": ""}, now)
        await workflows.set_graph(conn, workflow_id, graph["nodes"], graph["edges"])
        after = await workflows.workflow_by_id(conn, workflow_id)
        target = ("workflow", workflow_id, columns["gid"])
        await audited(conn, actor, now, "workflow.create", target, after=after)
    return after or {}


async def update_workflow(
    engine: AsyncEngine, actor: Actor, workflow_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change some fields (or the graph); the whole workflow is checked again. update_time
    moves on every change, so the center reloads it."""
    now = now_us()
    action = action_for_changes(changes)
    async with engine.begin() as conn:
        before = await visible(conn, actor, workflow_id, action)
        if action is Action.TOGGLE:
            if changes["status"] not in (ENABLED, PAUSED):
                raise Invalid("status", "must be 1 (enabled) or 0 (paused)")
            await workflows.update_workflow(conn, workflow_id, {"status": changes["status"]}, now)
        else:
            merged = before | _stored_graph(before) | changes
            columns, graph = await _checked(conn, actor, merged, workflow_id)
            await workflows.update_workflow(conn, workflow_id, columns, now)
            await workflows.set_graph(conn, workflow_id, graph["nodes"], graph["edges"])
        after = await workflows.workflow_by_id(conn, workflow_id)
        target = ("workflow", workflow_id, before["gid"])
        await audited(conn, actor, now, "workflow.update", target, before=before, after=after)
    return after or {}


async def delete_workflow(engine: AsyncEngine, actor: Actor, workflow_id: int) -> None:
    """Soft delete (status -1): the center stops it; its flow runs stay in the history."""
    now = now_us()
    async with engine.begin() as conn:
        before = await visible(conn, actor, workflow_id, Action.EDIT)
        await workflows.update_workflow(conn, workflow_id, {"status": DELETED}, now)
        target = ("workflow", workflow_id, before["gid"])
        await audited(conn, actor, now, "workflow.delete", target, before=before)
