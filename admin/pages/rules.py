"""Pages: rules — list, form with a live preview, one rule, pause, delete, run now, kill."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from admin import rulefields
from admin.actor import Actor
from admin.errors import AdminError, Invalid
from admin.pages._common import CsrfForm, int_or_none, redirect, text, texts
from admin.permissions import Action
from admin.queries.runs import RunFilter
from admin.services import agents, fleet, groups, rules, runs, workflows
from admin.web import Engine, Int64, PageSession, render
from center.rules import DEPENDS_WHEN, MISFIRE_POLICIES, OVERLAP_POLICIES, RETRY_UNKNOWN, ROUTINGS
from protocol.vocabulary import CommandKind

router = APIRouter()
_ZONES = sorted(available_timezones())


@router.get("/rules")
async def list_rules(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    q = request.query_params
    gid, status = int_or_none(q.get("gid")), int_or_none(q.get("status"))
    name = q.get("name", "")[:128]
    rows = await rules.list_rules(engine, session.actor, gid=gid, name=name, status=status)
    context = {
        "rules": rows,
        "groups": await groups.list_groups(engine, session.actor),
        "filters": {"gid": gid, "name": name, "status": status},
        "can_create": bool(session.actor.scope_for(Action.EDIT) != frozenset()),
    }
    return render(request, "rules.html", session, context)


@router.get("/rules/preview")
async def preview(session: PageSession, rule: str = "", timezone: str = "UTC") -> JSONResponse:
    """The form's live preview (JSON for the page's script)."""
    del session  # logged-in users only
    try:
        return JSONResponse({"fires": rules.preview(rule, timezone)})
    except Invalid as exc:
        return JSONResponse(exc.as_json(), status_code=exc.status)


def _form_values(row: dict[str, Any]) -> dict[str, str]:
    """A stored rule as the text its form fields show."""
    out = {name: "" if row.get(name) is None else str(row[name]) for name in rulefields.COLUMNS}
    for name in rulefields.BOOL_FIELDS:
        out[name] = "1" if row.get(name) else ""
    out["gid"] = str(row.get("gid") or "")
    return out


async def _form_page(
    request: Request,
    session: PageSession,
    engine: Engine,
    values: dict[str, str],
    *,
    task_id: int | None = None,
    chosen: list[int] | None = None,
    error: AdminError | None = None,
) -> HTMLResponse:
    actor = session.actor
    fires: list[str] = []
    if values.get("rule") and not values.get("is_daemon"):
        try:
            fires = rules.preview(values["rule"], values.get("timezone") or "UTC")
        except Invalid:
            fires = []
    context = {
        "values": values,
        "task_id": task_id,
        "chosen": chosen or [],
        "error": error,
        "fires": fires,
        **await _choices(engine, actor, task_id),
    }
    return render(request, "rule_form.html", session, context, error.status if error else 200)


async def _choices(engine: Engine, actor: Actor, task_id: int | None) -> dict[str, Any]:
    all_groups = await groups.list_groups(engine, actor)
    return {
        "groups": [g for g in all_groups if actor.can(Action.EDIT, g["id"])],
        "agents": await agents.list_agents(engine, actor),
        "other_rules": [r for r in await rules.list_rules(engine, actor) if r["id"] != task_id],
        "zones": _ZONES,
        "overlaps": OVERLAP_POLICIES,
        "routings": ROUTINGS,
        "misfires": MISFIRE_POLICIES,
        "depends_whens": DEPENDS_WHEN,
        "retry_unknowns": RETRY_UNKNOWN,
    }


@router.get("/rules/new")
async def new_rule(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    values = _form_values(rulefields.DEFAULTS)
    values["gid"] = request.query_params.get("gid", "")
    return await _form_page(request, session, engine, values)


def _raw(form: Any) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "agents"}


@router.post("/rules/new")
async def create_rule(
    request: Request, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    chosen = texts(form, "agents")
    try:
        values = rulefields.from_form(_raw(form), chosen)
        row = await rules.create_rule(engine, session.actor, values)
    except Invalid as exc:
        picked = [int(a) for a in chosen if a.isdigit()]
        return await _form_page(request, session, engine, _raw(form), chosen=picked, error=exc)
    return redirect(f"/rules/{row['id']}")


@router.get("/rules/{task_id}")
async def rule(
    request: Request, task_id: Int64, session: PageSession, engine: Engine
) -> HTMLResponse:
    actor = session.actor
    row = await rules.get_rule(engine, actor, task_id)
    fires: list[str] = []
    if not row["is_daemon"]:
        try:
            fires = rules.preview(row["rule"], row["timezone"])
        except Invalid:
            fires = []
    service = bool(row["is_daemon"]) and row["routing"] != "listed"
    placement = await fleet.placement(engine, actor, task_id) if service else []
    context = {
        "rule": row,
        "service": service,
        "placement": placement,
        "placed": sum(1 for p in placement if p["aid"]),
        "fires": fires,
        "runs": await runs.list_runs(engine, actor, RunFilter(task_id=task_id, limit=20)),
        "agents": {a["id"]: a for a in await agents.list_agents(engine, actor, row["gid"])},
        "can_run": actor.can(Action.RUN, row["gid"]),
        "can_toggle": actor.can(Action.TOGGLE, row["gid"]),
        "can_edit": actor.can(Action.EDIT, row["gid"]),
        "workflows": await workflows.workflows_of_rule(engine, actor, task_id),
    }
    return render(request, "rule.html", session, context)


@router.get("/rules/{task_id}/edit")
async def edit_rule(
    request: Request, task_id: Int64, session: PageSession, engine: Engine
) -> HTMLResponse:
    row = await rules.get_rule(engine, session.actor, task_id)
    session.actor.require(Action.EDIT, row["gid"], "rule")
    return await _form_page(
        request, session, engine, _form_values(row), task_id=task_id, chosen=row["agents"]
    )


@router.post("/rules/{task_id}/edit")
async def update_rule(
    request: Request, task_id: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    chosen = texts(form, "agents")
    try:
        values = rulefields.from_form(_raw(form), chosen)
        await rules.update_rule(engine, session.actor, task_id, values)
    except Invalid as exc:
        picked = [int(a) for a in chosen if a.isdigit()]
        return await _form_page(
            request, session, engine, _raw(form), task_id=task_id, chosen=picked, error=exc
        )
    return redirect(f"/rules/{task_id}")


@router.post("/rules/{task_id}/status")
async def set_status(
    task_id: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    status = 1 if text(form, "status") == "1" else 0
    await rules.update_rule(engine, session.actor, task_id, {"status": status})
    return redirect(f"/rules/{task_id}")


@router.post("/rules/{task_id}/delete")
async def delete_rule(
    task_id: Int64, session: PageSession, engine: Engine, _form: CsrfForm
) -> Response:
    await rules.delete_rule(engine, session.actor, task_id)
    return redirect("/rules")


@router.post("/rules/{task_id}/run")
async def run_now(
    task_id: Int64, session: PageSession, engine: Engine, _form: CsrfForm
) -> Response:
    await rules.command(engine, session.actor, task_id, CommandKind.RUN)
    return redirect(f"/rules/{task_id}")


@router.post("/rules/{task_id}/rebalance")
async def rebalance(
    task_id: Int64, session: PageSession, engine: Engine, _form: CsrfForm
) -> Response:
    await rules.command(engine, session.actor, task_id, CommandKind.REBALANCE)
    return redirect(f"/rules/{task_id}")


@router.post("/rules/{task_id}/kill")
async def kill_rule(
    task_id: Int64, session: PageSession, engine: Engine, _form: CsrfForm
) -> Response:
    await rules.command(engine, session.actor, task_id, CommandKind.KILL_RULE)
    return redirect(f"/rules/{task_id}")
