"""Pages: agents, pending ones to approve, one agent with what runs on it now."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from admin.errors import AdminError, Conflict, Invalid
from admin.pages._common import CsrfForm, int_or_none, redirect, text
from admin.permissions import Action
from admin.services import agents, fleet, groups
from admin.web import Engine, Int64, PageSession, render

router = APIRouter()


@router.get("/agents")
async def list_agents(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    actor = session.actor
    gid = int_or_none(request.query_params.get("gid"))
    all_groups = await groups.list_groups(engine, actor)
    context = {
        "agents": await agents.list_agents(engine, actor, gid),
        "pending": await agents.list_pending(engine, actor),
        "groups": all_groups,
        "admin_groups": [g for g in all_groups if actor.can(Action.EDIT, g["id"])],
        "gid": gid,
        "error": None,
    }
    return render(request, "agents.html", session, context)


async def _agent_page(
    request: Request,
    session: PageSession,
    engine: Engine,
    aid: int,
    error: AdminError | None = None,
    *,
    confirm_drain: bool = False,
) -> HTMLResponse:
    actor = session.actor
    row = await agents.get_agent(engine, actor, aid)
    row["placed"] = await fleet.agent_placements(engine, aid)
    all_groups = await groups.list_groups(engine, actor)
    context = {
        "agent": row,
        "can_edit": row["pending"] or actor.can(Action.EDIT, row["gid"]),
        "admin_groups": [g for g in all_groups if actor.can(Action.EDIT, g["id"])],
        "error": error,
        "confirm_drain": confirm_drain,
    }
    return render(request, "agent.html", session, context, error.status if error else 200)


@router.get("/agents/{aid}")
async def agent(request: Request, aid: Int64, session: PageSession, engine: Engine) -> HTMLResponse:
    return await _agent_page(request, session, engine, aid)


@router.post("/agents/{aid}/approve")
async def approve(
    request: Request, aid: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    try:
        gid = int_or_none(text(form, "gid"))
        if gid is None:
            raise Invalid("gid", "choose the group the agent goes into")
        await agents.approve_agent(engine, session.actor, aid, gid)
    except Invalid as exc:
        return await _agent_page(request, session, engine, aid, exc)
    return redirect(f"/agents/{aid}")


@router.post("/agents/{aid}/status")
async def set_status(aid: Int64, session: PageSession, engine: Engine, form: CsrfForm) -> Response:
    status = 1 if text(form, "status") == "1" else 0
    await agents.update_agent(engine, session.actor, aid, {"status": status})
    return redirect(f"/agents/{aid}")


@router.post("/agents/{aid}")
async def update(
    request: Request, aid: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    values: dict[str, object] = {"labels": text(form, "labels", "{}")}
    gid = int_or_none(text(form, "gid"))
    if gid is not None:
        values["gid"] = gid
    try:
        await agents.update_agent(engine, session.actor, aid, values)
    except Invalid as exc:
        return await _agent_page(request, session, engine, aid, exc)
    return redirect(f"/agents/{aid}")


@router.post("/agents/{aid}/drain")
async def drain(
    request: Request, aid: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    try:
        confirm = text(form, "confirm") == "1"
        await fleet.drain_agent(engine, session.actor, aid, confirm=confirm)
    except Conflict as exc:
        return await _agent_page(request, session, engine, aid, exc, confirm_drain=True)
    return redirect(f"/agents/{aid}")


@router.post("/agents/{aid}/delete")
async def delete(aid: Int64, session: PageSession, engine: Engine, _form: CsrfForm) -> Response:
    await agents.delete_agent(engine, session.actor, aid)
    return redirect("/agents")
