"""API: workflows — their definitions and graphs, flow runs, run now and re-run from a node."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from admin import flowfields
from admin.api.responses import CommandOut
from admin.api.workflow_models import FlowRunIn, FlowRunOut, WorkflowIn, WorkflowOut, WorkflowPatch
from admin.services import flow_runs, workflows
from admin.web import ApiActor, Engine, Int32, Int64

router = APIRouter(tags=["workflows"])
FlowRunId = Annotated[str, Path(max_length=64, description='A flow run id, "f<workflow>-<µs>"')]


@router.get("/workflows", response_model=list[WorkflowOut], response_model_exclude_unset=True)
async def list_workflows(
    actor: ApiActor, engine: Engine, gid: Int64 | None = None
) -> list[dict[str, Any]]:
    """Workflows of your groups (or of group `gid`), with `node_count`."""
    return await workflows.list_workflows(engine, actor, gid=gid)


@router.post(
    "/workflows",
    status_code=status.HTTP_201_CREATED,
    response_model=WorkflowOut,
    response_model_exclude_unset=True,
)
async def create_workflow(body: WorkflowIn, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Needs the admin role in `gid`. The graph is checked as the center checks it: a cycle,
    a rule of another group, an edge to itself: 422 naming `edges` or `nodes`."""
    return await workflows.create_workflow(engine, actor, body.changes())


@router.get("/workflows/runs/{flow_runid}", response_model=FlowRunOut)
async def get_flow_run(flow_runid: FlowRunId, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """One flow run with each node's state, its runs (those that count since the last re-run)
    and the reason a node was skipped."""
    return await flow_runs.get_flow_run(engine, actor, flow_runid)


@router.post(
    "/workflows/runs/{flow_runid}/nodes/{task_id}/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CommandOut,
    response_model_exclude_unset=True,
)
async def rerun_node(
    flow_runid: FlowRunId, task_id: Int64, actor: ApiActor, engine: Engine
) -> dict[str, Any]:
    """Re-run a node and every node after it in the same flow run (409 while the node runs);
    poll GET /commands/{id} for the center's answer."""
    return await flow_runs.rerun(engine, actor, flow_runid, task_id)


@router.get(
    "/workflows/{workflow_id}", response_model=WorkflowOut, response_model_exclude_unset=True
)
async def get_workflow(workflow_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """The workflow with `nodes` (task_id, join, name) and `edges`."""
    return await workflows.get_workflow(engine, actor, workflow_id)


@router.put(
    "/workflows/{workflow_id}", response_model=WorkflowOut, response_model_exclude_unset=True
)
async def replace_workflow(
    workflow_id: Int64, body: WorkflowIn, actor: ApiActor, engine: Engine
) -> dict[str, Any]:
    """The whole workflow: fields left out take their defaults, the graph is replaced."""
    values = flowfields.DEFAULTS | {"edges": []} | body.changes()
    return await workflows.update_workflow(engine, actor, workflow_id, values)


@router.patch(
    "/workflows/{workflow_id}", response_model=WorkflowOut, response_model_exclude_unset=True
)
async def update_workflow(
    workflow_id: Int64, body: WorkflowPatch, actor: ApiActor, engine: Engine
) -> dict[str, Any]:
    """Only `status` (pause 0 / enable 1): operator. Anything else: admin of the group."""
    return await workflows.update_workflow(engine, actor, workflow_id, body.changes())


@router.delete("/workflows/{workflow_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_workflow(workflow_id: Int64, actor: ApiActor, engine: Engine) -> None:
    """Soft delete: status -1; its flow runs stay in the history."""
    await workflows.delete_workflow(engine, actor, workflow_id)


@router.post(
    "/workflows/{workflow_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CommandOut,
    response_model_exclude_unset=True,
)
async def run_now(
    workflow_id: Int64, actor: ApiActor, engine: Engine, body: FlowRunIn | None = None
) -> dict[str, Any]:
    """Start a flow run now (operator); `params` and `env` are passed on to the center with the
    command. Poll GET /commands/{id}: its `result` names the flow run."""
    given = body.changes(frozenset({"params", "env"})) if body else {}
    args = flow_runs.run_args("api", given.get("params"), given.get("env"))
    return await flow_runs.run_now(engine, actor, workflow_id, args)


@router.get("/workflows/{workflow_id}/runs", response_model=list[FlowRunOut])
async def list_flow_runs(
    workflow_id: Int64,
    actor: ApiActor,
    engine: Engine,
    before_us: Annotated[Int64 | None, Query(description="The page after this sched_us")] = None,
    limit: Annotated[Int32, Query(ge=1, le=200)] = 20,
) -> list[dict[str, Any]]:
    """Flow runs newest first, each with its nodes' states; page with `before_us`."""
    return await flow_runs.list_flow_runs(
        engine, actor, workflow_id, before_us=before_us, limit=limit
    )
