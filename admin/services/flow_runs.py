"""Flow runs: the list and one run with each node's state, run a workflow now, re-run a node."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin.actor import Actor
from admin.errors import Conflict, Invalid, NotFound
from admin.flowstate import PENDING, FlowView, NodeState, node_states
from admin.permissions import Action
from admin.queries import runs, workflows
from admin.services import audited
from admin.services.workflows import visible
from center.errors import RuleError
from center.rules import check_env_override, check_params
from i18n.marks import N_
from protocol import statuses
from protocol.clock import now_us
from protocol.vocabulary import CommandKind, FlowStatus

OPEN = (FlowStatus.RUNNING, FlowStatus.QUEUED)


def _view(workflow: Mapping[str, Any], flow_run: Mapping[str, Any]) -> FlowView:
    return FlowView(
        workflow_id=int(workflow["id"]),
        sched_us=int(flow_run["sched_us"]),
        reruns=str(flow_run["reruns"]),
        nodes={n["task_id"]: n["join"] for n in workflow["nodes"]},
        names={n["task_id"]: n["name"] for n in workflow["nodes"]},
    )


def _with_nodes(
    flow_run: dict[str, Any], states: list[NodeState], *, with_runs: bool
) -> dict[str, Any]:
    flow_run["reruns"] = {str(s.task_id): s.generation for s in states if s.generation}
    flow_run["nodes"] = [s.as_dict(with_runs=with_runs) for s in states]
    return flow_run


async def list_flow_runs(
    engine: AsyncEngine,
    actor: Actor,
    workflow_id: int,
    *,
    before_us: int | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """A workflow's flow runs, newest first, each with its nodes' states."""
    async with engine.connect() as conn:
        workflow = await visible(conn, actor, workflow_id, Action.VIEW)
        found = await workflows.flow_runs(conn, workflow_id, before_us=before_us, limit=limit)
        rows = await workflows.node_runs(conn, [r["id"] for r in found])
    return [
        _with_nodes(r, node_states(_view(workflow, r), rows.get(r["id"], [])), with_runs=False)
        for r in found
    ]


async def _flow_run(
    conn: AsyncConnection, actor: Actor, flow_runid: str, action: Action
) -> tuple[dict[str, Any], dict[str, Any], list[NodeState]]:
    """The flow run, its workflow and its nodes' states; NotFound for one the actor cannot see."""
    flow_run = await workflows.flow_run_by_id(conn, flow_runid)
    if flow_run is None:
        raise NotFound("no such flow run")
    workflow = await visible(conn, actor, flow_run["workflow_id"], action)
    rows = (await workflows.node_runs(conn, [flow_runid])).get(flow_runid, [])
    return flow_run, workflow, node_states(_view(workflow, flow_run), rows)


async def get_flow_run(engine: AsyncEngine, actor: Actor, flow_runid: str) -> dict[str, Any]:
    """One flow run with its nodes, their runs (current generation) and reasons."""
    async with engine.connect() as conn:
        flow_run, workflow, states = await _flow_run(conn, actor, flow_runid, Action.VIEW)
    flow_run["workflow_name"] = workflow["name"]
    flow_run["gid"] = workflow["gid"]
    return _with_nodes(flow_run, states, with_runs=True)


def run_args(trigger: str, params: Any = None, env: Any = None) -> dict[str, Any]:
    """The command's `args`: who asked, and the optional parameters and environment, checked
    as the center checks them again (center.commands.ManualArgs); each step whose rule has
    allow_params gets them."""
    args: dict[str, Any] = {"trigger": trigger}
    try:
        if params not in (None, ""):
            if not isinstance(params, str):
                raise RuleError("params", "must be text (arguments appended to each command)")
            check_params(params)
            args["params"] = params
        if env not in (None, {}):
            args["env"] = check_env_override(env)
    except RuleError as exc:
        raise Invalid(exc.field, exc.reason) from None
    return args


async def run_now(
    engine: AsyncEngine, actor: Actor, workflow_id: int, args: dict[str, Any]
) -> dict[str, Any]:
    """Ask the leader to start a flow run now (a `flow_run` command); poll the command."""
    now = now_us()
    async with engine.begin() as conn:
        workflow = await visible(conn, actor, workflow_id, Action.RUN)
        values = {
            "kind": CommandKind.FLOW_RUN,
            "task_id": workflow_id,
            "user_id": actor.user.id,
            "created_us": now,
            "status": "pending",
            "args": json.dumps(args, sort_keys=True),
        }
        command_id = await runs.insert_command(conn, values)
        row = await runs.command_by_id(conn, command_id)
        target = ("workflow", workflow_id, workflow["gid"])
        await audited(conn, actor, now, "workflow.run", target, after=row)
    return row or {}


def _refusal(flow_run: Mapping[str, Any], node: NodeState, task_id: int) -> str:
    """Why a step cannot be re-run now, or ""."""
    if node.state == statuses.RUNNING:
        return N_(f"node {task_id} is still running in flow run {flow_run['id']}")
    if node.state == PENDING and flow_run["status"] in OPEN:
        return N_(f"node {task_id} has not started yet in flow run {flow_run['id']}")
    return ""


async def rerun(engine: AsyncEngine, actor: Actor, flow_runid: str, task_id: int) -> dict[str, Any]:
    """Ask the leader to re-run a node and what follows it in the same flow run."""
    now = now_us()
    async with engine.begin() as conn:
        flow_run, workflow, states = await _flow_run(conn, actor, flow_runid, Action.RUN)
        node = next((s for s in states if s.task_id == task_id), None)
        if node is None or not node.join:
            raise NotFound(f"rule {task_id} is not a node of this workflow")
        refused = _refusal(flow_run, node, task_id)
        if refused:
            raise Conflict(refused)
        if await workflows.pending_command(conn, CommandKind.FLOW_RERUN, flow_runid, task_id):
            raise Conflict(f"a re-run of node {task_id} waits for the center already")
        values = {
            "kind": CommandKind.FLOW_RERUN,
            "task_id": task_id,
            "runid": flow_runid,
            "user_id": actor.user.id,
            "created_us": now,
            "status": "pending",
        }
        command_id = await runs.insert_command(conn, values)
        row = await runs.command_by_id(conn, command_id)
        target = ("workflow", workflow["id"], workflow["gid"])
        await audited(conn, actor, now, "workflow.rerun", target, after=row)
    return row or {}


async def commands(engine: AsyncEngine, actor: Actor, workflow_id: int) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        await visible(conn, actor, workflow_id, Action.VIEW)
        return await workflows.commands_of_workflow(conn, workflow_id)
