"""Pages: a group's calendars — list, create, edit, delete (group admins; audited)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from admin.errors import AdminError
from admin.pages._common import CsrfForm, redirect, text
from admin.permissions import Action
from admin.services import calendars, groups
from admin.web import Engine, Int64, PageSession, render
from center.calendars import BUILTINS

router = APIRouter()


def _values(form: Any) -> dict[str, str]:
    return {name: text(form, name) for name in calendars.FIELDS}


@router.get("/groups/{gid}/calendars")
async def list_calendars(
    request: Request, gid: Int64, session: PageSession, engine: Engine
) -> HTMLResponse:
    return await _list_page(request, gid, session, engine)


async def _list_page(
    request: Request,
    gid: int,
    session: PageSession,
    engine: Engine,
    *,
    values: dict[str, str] | None = None,
    error: AdminError | None = None,
) -> HTMLResponse:
    actor = session.actor
    context = {
        "group": await groups.get_group(engine, actor, gid),
        "calendars": await calendars.list_calendars(engine, actor, gid),
        "can_edit": actor.can(Action.EDIT, gid),
        "bases": BUILTINS,
        "values": values or {},
        "error": error,
    }
    return render(request, "calendars.html", session, context, error.status if error else 200)


@router.post("/groups/{gid}/calendars")
async def create_calendar(
    request: Request, gid: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    try:
        row = await calendars.create_calendar(engine, session.actor, gid, _values(form))
    except AdminError as exc:
        if exc.status not in (409, 422):
            raise
        return await _list_page(request, gid, session, engine, values=_values(form), error=exc)
    return redirect(f"/calendars/{row['id']}")


async def _calendar_page(
    request: Request,
    session: PageSession,
    engine: Engine,
    calendar_id: int,
    *,
    values: dict[str, str] | None = None,
    error: AdminError | None = None,
) -> HTMLResponse:
    actor = session.actor
    row = await calendars.get_calendar(engine, actor, calendar_id)
    context = {
        "calendar": row,
        "group": await groups.get_group(engine, actor, row["gid"]),
        "can_edit": actor.can(Action.EDIT, row["gid"]),
        "bases": BUILTINS,
        "values": values or {k: row[k] for k in calendars.FIELDS},
        "error": error,
    }
    return render(request, "calendar.html", session, context, error.status if error else 200)


@router.get("/calendars/{calendar_id}")
async def calendar(
    request: Request, calendar_id: Int64, session: PageSession, engine: Engine
) -> HTMLResponse:
    return await _calendar_page(request, session, engine, calendar_id)


@router.post("/calendars/{calendar_id}")
async def update_calendar(
    request: Request, calendar_id: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    try:
        await calendars.update_calendar(engine, session.actor, calendar_id, _values(form))
    except AdminError as exc:
        if exc.status not in (409, 422):
            raise
        return await _calendar_page(
            request, session, engine, calendar_id, values=_values(form), error=exc
        )
    return redirect(f"/calendars/{calendar_id}")


@router.post("/calendars/{calendar_id}/delete")
async def delete_calendar(
    request: Request, calendar_id: Int64, session: PageSession, engine: Engine, _form: CsrfForm
) -> Response:
    row = await calendars.get_calendar(engine, session.actor, calendar_id)
    try:
        await calendars.delete_calendar(engine, session.actor, calendar_id)
    except AdminError as exc:
        if exc.status != 409:
            raise
        return await _calendar_page(request, session, engine, calendar_id, error=exc)
    return redirect(f"/groups/{row['gid']}/calendars")
