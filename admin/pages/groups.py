"""Pages: groups, with the roles in each."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from admin.errors import AdminError, Conflict, Invalid
from admin.pages._common import CsrfForm, redirect, text
from admin.permissions import ROLES, Action
from admin.queries import users as user_rows
from admin.services import groups, keys, stats, users
from admin.web import Engine, Int64, PageSession, render

router = APIRouter()


@router.get("/groups")
async def list_groups(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    rows = await groups.list_groups(engine, session.actor)
    return render(request, "groups.html", session, {"groups": rows, "error": None})


@router.post("/groups")
async def create_group(
    request: Request, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    values = {"name": text(form, "name"), "description": text(form, "description")}
    try:
        row = await groups.create_group(engine, session.actor, values)
    except Invalid as exc:
        rows = await groups.list_groups(engine, session.actor)
        context = {"groups": rows, "error": exc}
        return render(request, "groups.html", session, context, exc.status)
    return redirect(f"/groups/{row['id']}")


async def _group_page(
    request: Request,
    session: PageSession,
    engine: Engine,
    gid: int,
    error: AdminError | None = None,
) -> HTMLResponse:
    actor = session.actor
    group = await groups.get_group(engine, actor, gid)
    context = {
        "group": group,
        "grants": await users.list_grants(engine, actor, gid=gid),
        "can_edit": actor.can(Action.EDIT, gid),
        "can_grant": actor.can(Action.GRANT, gid),
        "can_delete": actor.can(Action.MANAGE_GROUPS, gid),
        "roles": ROLES,
        "keys": await keys.list_keys(engine, actor, gid),
        "error": error,
    }
    figures = await stats.group_stats(engine, actor, gid)
    context |= {"stats": figures, "trend": stats.chart(figures)}
    return render(request, "group.html", session, context, error.status if error else 200)


@router.get("/groups/{gid}")
async def group(request: Request, gid: Int64, session: PageSession, engine: Engine) -> HTMLResponse:
    return await _group_page(request, session, engine, gid)


@router.post("/groups/{gid}")
async def update_group(
    request: Request, gid: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    values = {"name": text(form, "name"), "description": text(form, "description")}
    try:
        await groups.update_group(engine, session.actor, gid, values)
    except Invalid as exc:
        return await _group_page(request, session, engine, gid, exc)
    return redirect(f"/groups/{gid}")


@router.post("/groups/{gid}/delete")
async def delete_group(
    gid: Int64, session: PageSession, engine: Engine, _form: CsrfForm
) -> Response:
    await groups.delete_group(engine, session.actor, gid)
    return redirect("/groups")


@router.post("/groups/{gid}/grants")
async def put_grant(
    request: Request, gid: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    name = text(form, "username").strip().lower()
    async with engine.connect() as conn:
        target = await user_rows.user_by_name(conn, name) if name else None
    try:
        if target is None:
            raise Invalid("username", f"no such user: {name[:64]}")
        await users.put_grant(engine, session.actor, target["id"], gid, text(form, "role"))
    except Invalid as exc:
        return await _group_page(request, session, engine, gid, exc)
    return redirect(f"/groups/{gid}")


@router.post("/grants/{grant_id}/delete")
async def delete_grant(
    grant_id: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    grant = await users.get_grant(engine, session.actor, grant_id)
    await users.delete_grant(engine, session.actor, grant_id)
    back = text(form, "back")
    return redirect(back if back.startswith("/users/") else f"/groups/{grant['gid']}")


# ---------------------------------------------------------------- concurrency keys


def _key_values(form: CsrfForm, *names: str) -> dict[str, object]:
    values: dict[str, object] = {name: text(form, name) for name in names}
    if "limit" in values:
        limit = str(values["limit"]).strip()
        values["limit"] = int(limit) if limit.isdigit() else limit  # a bad one is refused
    return values


@router.post("/groups/{gid}/keys")
async def create_key(
    request: Request, gid: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    try:
        values = _key_values(form, "key", "limit", "description")
        await keys.create_key(engine, session.actor, gid, values)
    except (Invalid, Conflict) as exc:
        return await _group_page(request, session, engine, gid, exc)
    return redirect(f"/groups/{gid}#keys")


@router.post("/groups/{gid}/keys/{key_id}")
async def update_key(
    request: Request,
    gid: Int64,
    key_id: Int64,
    *,
    session: PageSession,
    engine: Engine,
    form: CsrfForm,
) -> Response:
    try:
        values = _key_values(form, "limit", "description")
        await keys.update_key(engine, session.actor, gid, key_id, values)
    except Invalid as exc:
        return await _group_page(request, session, engine, gid, exc)
    return redirect(f"/groups/{gid}#keys")


@router.post("/groups/{gid}/keys/{key_id}/delete")
async def delete_key(
    request: Request,
    gid: Int64,
    key_id: Int64,
    *,
    session: PageSession,
    engine: Engine,
    _form: CsrfForm,
) -> Response:
    try:
        await keys.delete_key(engine, session.actor, gid, key_id)
    except Conflict as exc:
        return await _group_page(request, session, engine, gid, exc)
    return redirect(f"/groups/{gid}#keys")
