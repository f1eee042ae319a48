"""Pages: workflows — list, form, one workflow with its graph drawn as SVG and coloured by a
chosen flow run, run now, pause, delete, re-run from a node."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from admin import dag_svg, flowfields
from admin.errors import AdminError, Invalid, NotFound
from admin.pages._common import CsrfForm, int_or_none, redirect, text, texts
from admin.permissions import Action
from admin.services import flow_runs, groups, rules, workflows
from admin.translate import reader_of
from admin.web import Engine, Int64, PageSession, render
from center.calendars import BUILTINS
from center.dag import Edge
from protocol.vocabulary import CalendarFallback, CalendarMode

router = APIRouter()
_ZONES = sorted(available_timezones())
RUNS_SHOWN = 20


@router.get("/workflows")
async def list_workflows(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    gid = int_or_none(request.query_params.get("gid"))
    context = {
        "workflows": await workflows.list_workflows(engine, session.actor, gid=gid),
        "groups": await groups.list_groups(engine, session.actor),
        "filters": {"gid": gid},
        "can_create": session.actor.scope_for(Action.EDIT) != frozenset(),
    }
    return render(request, "workflows.html", session, context)


# ---------------------------------------------------------------- the form


def _form_values(row: dict[str, Any]) -> dict[str, str]:
    """A stored workflow as the text its form shows (edges as lines)."""
    out = {name: str(row.get(name, flowfields.DEFAULTS[name])) for name in flowfields.COLUMNS}
    out["gid"] = str(row.get("gid") or "")
    names = {n["task_id"]: n["name"] for n in row.get("nodes", [])}
    out["edges"] = flowfields.edges_text(row.get("edges", []), names)
    return out


async def _node_choices(engine: Engine, session: PageSession) -> list[dict[str, Any]]:
    """Rules that may be steps: not daemons, in groups where the user may edit workflows."""
    actor = session.actor
    return [
        r
        for r in await rules.list_rules(engine, actor)
        if not r["is_daemon"] and actor.can(Action.EDIT, r["gid"])
    ]


async def _form_page(
    request: Request,
    session: PageSession,
    engine: Engine,
    values: dict[str, str],
    nodes: list[dict[str, Any]],
    *,
    workflow_id: int | None = None,
    error: AdminError | None = None,
) -> HTMLResponse:
    actor = session.actor
    context = {
        "values": values,
        "chosen": {n["task_id"]: n["join"] for n in nodes},
        "workflow_id": workflow_id,
        "error": error,
        "groups": [
            g for g in await groups.list_groups(engine, actor) if actor.can(Action.EDIT, g["id"])
        ],
        "node_rules": await _node_choices(engine, session),
        "zones": _ZONES,
        "overlaps": flowfields.OVERLAPS,
        "misfires": flowfields.MISFIRES,
        "joins": flowfields.JOINS,
        "calendars": BUILTINS,
        "calendar_modes": tuple(CalendarMode),
        "calendar_fallbacks": tuple(CalendarFallback),
    }
    return render(request, "workflow_form.html", session, context, error.status if error else 200)


def _raw(form: Any) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "nodes"}


async def _from_form(
    engine: Engine, session: PageSession, form: Any
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], Invalid | None]:
    """The posted values, and the ticked nodes to show again if they are refused."""
    chosen = texts(form, "nodes")
    names = {r["id"]: r["name"] for r in await _node_choices(engine, session)}
    picked = [
        {"task_id": int(c), "join": text(form, f"join-{c}", "all")} for c in chosen if c.isdigit()
    ]
    try:
        return flowfields.from_form(_raw(form), chosen, names), picked, None
    except Invalid as exc:
        return None, picked, exc


@router.get("/workflows/new")
async def new_workflow(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    values = _form_values(dict(flowfields.DEFAULTS))
    values["gid"] = request.query_params.get("gid", "")
    return await _form_page(request, session, engine, values, [])


@router.post("/workflows/new")
async def create_workflow(
    request: Request, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    values, picked, error = await _from_form(engine, session, form)
    try:
        if error or values is None:
            raise error or Invalid("nodes", "unreadable form")
        row = await workflows.create_workflow(engine, session.actor, values)
    except Invalid as exc:
        return await _form_page(request, session, engine, _raw(form), picked, error=exc)
    return redirect(f"/workflows/{row['id']}")


@router.get("/workflows/{workflow_id}/edit")
async def edit_workflow(
    request: Request, workflow_id: Int64, session: PageSession, engine: Engine
) -> HTMLResponse:
    row = await workflows.get_workflow(engine, session.actor, workflow_id)
    session.actor.require(Action.EDIT, row["gid"], "workflow")
    values = _form_values(row)
    return await _form_page(request, session, engine, values, row["nodes"], workflow_id=workflow_id)


@router.post("/workflows/{workflow_id}/edit")
async def update_workflow(
    request: Request, workflow_id: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    values, picked, error = await _from_form(engine, session, form)
    try:
        if error or values is None:
            raise error or Invalid("nodes", "unreadable form")
        await workflows.update_workflow(engine, session.actor, workflow_id, values)
    except Invalid as exc:
        return await _form_page(
            request, session, engine, _raw(form), picked, workflow_id=workflow_id, error=exc
        )
    return redirect(f"/workflows/{workflow_id}")


# ---------------------------------------------------------------- one workflow


async def _chosen_run(
    engine: Engine, session: PageSession, workflow_id: int, wanted: str | None, newest: list[Any]
) -> dict[str, Any] | None:
    """The flow run the graph is coloured by: `?run=`, else the newest; None when none."""
    runid = wanted or (newest[0]["id"] if newest else None)
    if not runid:
        return None
    found = await flow_runs.get_flow_run(engine, session.actor, runid[:64])
    if found["workflow_id"] != workflow_id:
        raise NotFound("no such flow run of this workflow")
    return found


@router.get("/workflows/{workflow_id}")
async def workflow_page(
    request: Request, workflow_id: Int64, session: PageSession, engine: Engine
) -> HTMLResponse:
    actor = session.actor
    row = await workflows.get_workflow(engine, actor, workflow_id)
    recent = await flow_runs.list_flow_runs(engine, actor, workflow_id, limit=RUNS_SHOWN)
    chosen = await _chosen_run(
        engine, session, workflow_id, request.query_params.get("run"), recent
    )
    nodes = {n["task_id"]: n for n in (chosen or {}).get("nodes", [])}
    edges = [Edge(e["parent_task_id"], e["child_task_id"], e["when"]) for e in row["edges"]]
    names = {n["task_id"]: n["name"] for n in row["nodes"]}
    states = {t: n["state"] for t, n in nodes.items()} if chosen else None
    timing = await workflows.fire_times(engine, row)
    context = {
        "wf": row,
        "drawing": dag_svg.layout(names, edges, states, reader_of(request).words.gettext),
        "runs": recent,
        "chosen": chosen,
        "nodes": nodes,
        "fires": timing["fires"],
        "warning": timing["warning"],
        "commands": await flow_runs.commands(engine, actor, workflow_id),
        "can_run": actor.can(Action.RUN, row["gid"]),
        "can_toggle": actor.can(Action.TOGGLE, row["gid"]),
        "can_edit": actor.can(Action.EDIT, row["gid"]),
    }
    return render(request, "workflow.html", session, context)


@router.post("/workflows/{workflow_id}/status")
async def set_status(
    workflow_id: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    status = 1 if text(form, "status") == "1" else 0
    await workflows.update_workflow(engine, session.actor, workflow_id, {"status": status})
    return redirect(f"/workflows/{workflow_id}")


@router.post("/workflows/{workflow_id}/delete")
async def delete_workflow(
    workflow_id: Int64, session: PageSession, engine: Engine, _form: CsrfForm
) -> Response:
    await workflows.delete_workflow(engine, session.actor, workflow_id)
    return redirect("/workflows")


@router.post("/workflows/{workflow_id}/run")
async def run_now(
    workflow_id: Int64, session: PageSession, engine: Engine, _form: CsrfForm
) -> Response:
    args = flow_runs.run_args("manual")
    await flow_runs.run_now(engine, session.actor, workflow_id, args)
    return redirect(f"/workflows/{workflow_id}")


@router.post("/workflows/runs/{flow_runid}/nodes/{task_id}/rerun")
async def rerun(
    flow_runid: str, task_id: Int64, session: PageSession, engine: Engine, _form: CsrfForm
) -> Response:
    await flow_runs.rerun(engine, session.actor, flow_runid[:64], task_id)
    workflow_id = flow_runid[1:].split("-", 1)[0]
    return redirect(f"/workflows/{workflow_id}?run={flow_runid[:64]}")
