"""API: runs, their output, kill, and the commands sent to the center."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from admin.api.responses import CommandOut, OutputOut, RunOut
from admin.queries.runs import RunFilter
from admin.services import runs
from admin.web import ApiActor, Engine, Int64

router = APIRouter(tags=["runs"])


class RunsQuery(BaseModel):
    rule: Int64 | None = Field(default=None, description="Only runs of this rule id")
    agent: Int64 | None = Field(default=None, description="Only runs on this agent id")
    status: str | None = Field(default=None, description="planned, running, success, ...")
    since_us: Int64 | None = Field(default=None, description="Scheduled at or after (µs)")
    until_us: Int64 | None = Field(default=None, description="Scheduled before (µs)")
    before_id: Int64 | None = Field(default=None, description="The next page after this run id")
    limit: int = Field(default=100, ge=1, le=1000)


@router.get("/runs", response_model=list[RunOut], response_model_exclude_unset=True)
async def list_runs(
    actor: ApiActor, engine: Engine, q: Annotated[RunsQuery, Query()]
) -> list[dict[str, Any]]:
    """Runs of your groups' rules, newest first, without output; page with `before_id`."""
    f = RunFilter(q.rule, q.agent, q.status, q.since_us, q.until_us, q.before_id, q.limit)
    return await runs.list_runs(engine, actor, f)


@router.get("/runs/{run_id}", response_model=RunOut, response_model_exclude_unset=True)
async def get_run(run_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """One run with its output (`result`, the head and tail when truncated)."""
    return await runs.get_run(engine, actor, run_id)


@router.get("/runs/{run_id}/output", response_model=OutputOut, response_model_exclude_unset=True)
async def live_output(
    run_id: Int64, actor: ApiActor, engine: Engine, offset: Int64 = 0
) -> dict[str, Any]:
    """Output so far from `offset` on, while the run goes on; ask again with the `offset` returned.

    Once `final` is true, GET /runs/{id} has the whole kept output in `result`."""
    run = await runs.get_run(engine, actor, run_id)
    return await runs.output_since(engine, run, max(0, offset))


@router.post(
    "/runs/{run_id}/kill",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CommandOut,
    response_model_exclude_unset=True,
)
async def kill_run(run_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Stop this run; poll GET /commands/{id} for the center's answer."""
    return await runs.kill_run(engine, actor, run_id)


@router.get("/commands/{command_id}", response_model=CommandOut, response_model_exclude_unset=True)
async def get_command(command_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """status: pending, done or failed; `result` says what the center did."""
    return await runs.get_command(engine, actor, command_id)
