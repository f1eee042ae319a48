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
from admin.services import agents, calendars, fleet, groups, rules, runs, stats, workflows
from admin.timing_preview import PreviewAsk
from admin.translate import reader_of
from admin.web import Engine, Int64, PageSession, render
from center.calendars import BUILTINS
from center.rules import DEPENDS_WHEN, MISFIRE_POLICIES, OVERLAP_POLICIES, RETRY_UNKNOWN, ROUTINGS
from protocol.vocabulary import CalendarFallback, CalendarMode, CommandKind

router = APIRouter()
RULES_PAGE = 100
_ZONES = sorted(available_timezones())


@router.get("/rules")
async def list_rules(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    q = request.query_params
    gid, status = int_or_none(q.get("gid")), int_or_none(q.get("status"))
    name = q.get("name", "")[:128]
    rows = await rules.list_rules(engine, session.actor, gid=gid, name=name, status=status)
    # A page of rules, each with its last 20 outcomes and success rate (one indexed walk per rule).
    page = max(int_or_none(q.get("page")) or 1, 1)
    shown = rows[(page - 1) * RULES_PAGE : page * RULES_PAGE]
    await stats.rule_outcomes(engine, shown)
    context = {
        "rules": shown,
        "page": page,
        "more": len(rows) > page * RULES_PAGE,
        "groups": await groups.list_groups(engine, session.actor),
        "filters": {"gid": gid, "name": name, "status": status},
        "can_create": bool(session.actor.scope_for(Action.EDIT) != frozenset()),
    }
    return render(request, "rules.html", session, context)


@router.get("/rules/preview")
async def preview(request: Request, session: PageSession, engine: Engine) -> JSONResponse:
    """The form's live preview (JSON for the page's script): the real fire times, after H,
    the calendar and jitter, as the center will plan them."""
    words = reader_of(request).words
    try:
        answer = await rules.preview_times(engine, session.actor, _ask(dict(request.query_params)))
    except Invalid as exc:
        body = {"error": {"field": exc.field, "reason": words.reason(exc.reason)}}
        return JSONResponse(body, status_code=exc.status)
    return JSONResponse({"fires": answer["fires"], "warning": words.reason(answer["warning"])})


def _ask(values: dict[str, str], task_id: int | None = None) -> PreviewAsk:
    """A preview of a form's (or the page script's) text values; Invalid names a bad number."""

    def number(name: str, default: int | None) -> int | None:
        text = values.get(name, "").strip()
        if not text:
            return default
        if not text.lstrip("-").isdigit() or len(text) > 12:
            raise Invalid(name, f"{text[:40]!r} is not a whole number")
        return int(text)

    return PreviewAsk(
        rule=values.get("rule", ""),
        timezone=values.get("timezone") or "UTC",
        calendar=values.get("calendar", "").strip(),
        calendar_mode=values.get("calendar_mode") or "only",
        calendar_fallback=values.get("calendar_fallback") or "skip",
        jitter_s=number("jitter_s", 0) or 0,
        task_id=task_id if task_id is not None else number("id", None),
        gid=number("gid", None),
    )


async def _fires(
    engine: Engine, actor: Actor, values: dict[str, str], task_id: int | None
) -> tuple[list[str], str]:
    """A rule's next fire times and its calendar warning for a page; none if it is not valid."""
    if not values.get("rule") or values.get("is_daemon") in ("1", "True"):
        return [], ""
    try:
        answer = await rules.preview_times(engine, actor, _ask(values, task_id))
    except Invalid:
        return [], ""
    return list(answer["fires"]), str(answer["warning"])


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
    fires, warning = await _fires(engine, actor, values, task_id)
    context = {
        "values": values,
        "task_id": task_id,
        "chosen": chosen or [],
        "error": error,
        "fires": fires,
        "warning": warning,
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
        "calendars": [*BUILTINS, *await calendars.names(engine, actor)],
        "calendar_modes": tuple(CalendarMode),
        "calendar_fallbacks": tuple(CalendarFallback),
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
    return await _rule_page(request, task_id, session, engine)


async def _rule_page(
    request: Request,
    task_id: int,
    session: PageSession,
    engine: Engine,
    error: AdminError | None = None,
) -> HTMLResponse:
    actor = session.actor
    row = await rules.get_rule(engine, actor, task_id)
    fires, _ = await _fires(engine, actor, _form_values(row), task_id)
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
        "error": error,
    }
    figures = await stats.rule_stats(engine, actor, task_id)
    context |= {"stats": figures, "trend": stats.chart(figures, reader_of(request).words.gettext)}
    return render(request, "rule.html", session, context, error.status if error else 200)


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
    request: Request, task_id: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    """Run now; the form may add params, env overrides (JSON) and a run-at time."""
    extras = {name: text(form, name).strip() for name in ("params", "env", "run_at")}
    try:
        await rules.command(engine, session.actor, task_id, CommandKind.RUN, extras)
    except Invalid as exc:
        return await _rule_page(request, task_id, session, engine, exc)
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
