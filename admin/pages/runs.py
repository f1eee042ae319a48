"""Pages: the run history, one run, its live output (server-sent events), kill."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from admin.pages._common import CsrfForm, int_or_none, redirect, us_from_local
from admin.permissions import Action
from admin.queries.runs import RunFilter
from admin.services import agents, rules, runs
from admin.translate import reader_of
from admin.web import Config, Engine, Int64, PageSession, render
from protocol import statuses

router = APIRouter()
PAGE_SIZE = 100


@router.get("/runs")
async def list_runs(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    q = request.query_params
    status = q.get("status") if q.get("status") in statuses.ALL else None
    timezone = reader_of(request).timezone
    f = RunFilter(
        task_id=int_or_none(q.get("rule")),
        aid=int_or_none(q.get("agent")),
        status=status,
        since_us=us_from_local(q.get("since"), timezone),
        until_us=us_from_local(q.get("until"), timezone),
        before_id=int_or_none(q.get("before_id")),
        limit=PAGE_SIZE,
    )
    rows = await runs.list_runs(engine, session.actor, f)
    context = {
        "runs": rows,
        "filters": {k: q.get(k, "") for k in ("rule", "agent", "status", "since", "until")},
        "statuses": sorted(statuses.ALL),
        "rules": await rules.list_rules(engine, session.actor),
        "agents": await agents.list_agents(engine, session.actor),
        "next_before": rows[-1]["id"] if len(rows) == PAGE_SIZE else None,
    }
    return render(request, "runs.html", session, context)


@router.get("/runs/{run_id}")
async def run(
    request: Request, run_id: Int64, session: PageSession, engine: Engine
) -> HTMLResponse:
    row = await runs.get_run(engine, session.actor, run_id)
    context = {"run": row, "can_kill": session.actor.can(Action.RUN, row["rule_gid"])}
    return render(request, "run.html", session, context)


@router.get("/runs/{run_id}/stream")
async def stream(
    request: Request, run_id: Int64, session: PageSession, engine: Engine, cfg: Config
) -> StreamingResponse:
    """The run's output as server-sent events until the run is over."""
    row = await runs.get_run(engine, session.actor, run_id)
    offset = int_or_none(request.headers.get("last-event-id")) or 0
    events = runs.tail(engine, row, offset, cfg.admin_tail_poll_s, request.is_disconnected)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


@router.post("/runs/{run_id}/kill")
async def kill(run_id: Int64, session: PageSession, engine: Engine, _form: CsrfForm) -> Response:
    await runs.kill_run(engine, session.actor, run_id)
    return redirect(f"/runs/{run_id}")
