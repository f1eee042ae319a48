"""Pages: users (superadmins manage them), one user's roles, the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from admin.errors import AdminError, Invalid
from admin.pages._common import CsrfForm, int_or_none, redirect, text
from admin.permissions import ROLES, Action
from admin.services import groups, users
from admin.web import Engine, Int64, PageSession, render

router = APIRouter()


async def _users_page(
    request: Request, session: PageSession, engine: Engine, error: AdminError | None = None
) -> HTMLResponse:
    context = {
        "users": await users.list_users(engine, session.actor),
        "can_manage": session.actor.can(Action.MANAGE_USERS, None),
        "error": error,
    }
    return render(request, "users.html", session, context, error.status if error else 200)


@router.get("/users")
async def list_users(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    return await _users_page(request, session, engine)


@router.post("/users")
async def create_user(
    request: Request, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    try:
        row = await users.create_user(
            engine,
            session.actor,
            text(form, "name"),
            text(form, "password"),
            text(form, "superadmin") == "1",
        )
    except AdminError as exc:
        if exc.status not in (409, 422):
            raise
        return await _users_page(request, session, engine, exc)
    return redirect(f"/users/{row['id']}")


async def _user_page(
    request: Request,
    session: PageSession,
    engine: Engine,
    user_id: int,
    error: AdminError | None = None,
) -> HTMLResponse:
    actor = session.actor
    all_groups = await groups.list_groups(engine, actor)
    context = {
        "user": await users.get_user(engine, actor, user_id),
        "can_manage": actor.can(Action.MANAGE_USERS, None),
        "grant_groups": [g for g in all_groups if actor.can(Action.GRANT, g["id"])],
        "roles": ROLES,
        "error": error,
    }
    return render(request, "user.html", session, context, error.status if error else 200)


@router.get("/users/{user_id}")
async def user(
    request: Request, user_id: Int64, session: PageSession, engine: Engine
) -> HTMLResponse:
    return await _user_page(request, session, engine, user_id)


@router.post("/users/{user_id}")
async def update_user(
    request: Request, user_id: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    values: dict[str, object] = {
        "superadmin": text(form, "superadmin") == "1",
        "status": 1 if text(form, "status") == "1" else 0,
        "totp_required": text(form, "totp_required") == "1",
        "totp_reset": text(form, "totp_reset") == "1",
    }
    if text(form, "password"):
        values["password"] = text(form, "password")
    try:
        await users.update_user(engine, session.actor, user_id, values)
    except AdminError as exc:
        if exc.status not in (409, 422):
            raise
        return await _user_page(request, session, engine, user_id, exc)
    return redirect(f"/users/{user_id}")


@router.post("/users/{user_id}/grants")
async def put_grant(
    request: Request, user_id: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    gid = int_or_none(text(form, "gid"))
    try:
        if gid is None:
            raise Invalid("gid", "choose a group")
        await users.put_grant(engine, session.actor, user_id, gid, text(form, "role"))
    except Invalid as exc:
        return await _user_page(request, session, engine, user_id, exc)
    return redirect(f"/users/{user_id}")


@router.post("/users/{user_id}/delete")
async def delete_user(
    user_id: Int64, session: PageSession, engine: Engine, _form: CsrfForm
) -> Response:
    await users.delete_user(engine, session.actor, user_id)
    return redirect("/users")


@router.get("/audit")
async def audit(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    q = request.query_params
    entries = await users.list_audit(
        engine,
        session.actor,
        before_id=int_or_none(q.get("before_id")),
        limit=100,
        object_type=q.get("object_type", ""),
        object_id=q.get("object_id", ""),
    )
    context = {
        "entries": entries,
        "filters": {k: q.get(k, "") for k in ("object_type", "object_id")},
        "next_before": entries[-1]["id"] if len(entries) == 100 else None,
    }
    return render(request, "audit.html", session, context)
