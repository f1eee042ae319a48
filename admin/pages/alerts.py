"""Pages: alert channels of one's groups; group admins add, edit, test and delete them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from admin.errors import Invalid
from admin.pages._common import CsrfForm, int_or_none, redirect, text, texts
from admin.permissions import Action
from admin.services import alerts, groups
from admin.web import Config, Engine, Int64, PageSession, get_config, render
from center.alerts.model import EVENTS, KINDS

router = APIRouter()


def _number(form: FormData, name: str) -> int:
    value = int_or_none(text(form, name))
    if value is None:
        raise Invalid(name, "must be a whole number")
    return value


def _values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": text(form, "name"),
        "kind": text(form, "kind"),
        "target": text(form, "target"),
        "mentions": text(form, "mentions"),
        "language": text(form, "language"),
        "events": texts(form, "events"),
        "throttle_s": _number(form, "throttle_s"),
        "grace_s": _number(form, "grace_s"),
        "status": 1 if text(form, "status") in ("1", "on") else 0,
    }
    if text(form, "secret"):
        values["secret"] = text(form, "secret")  # empty: keep the one there is
    return values


async def _list_page(
    request: Request, session: PageSession, engine: Engine, error: Invalid | None = None
) -> HTMLResponse:
    actor = session.actor
    all_groups = await groups.list_groups(engine, actor)
    context = {
        "channels": await alerts.list_channels(engine, actor),
        "admin_groups": [g for g in all_groups if actor.can(Action.EDIT, g["id"])],
        "events": EVENTS,
        "kinds": KINDS,
        "defaults": alerts.DEFAULTS,
        "error": error,
    }
    return render(request, "alerts.html", session, context, error.status if error else 200)


@router.get("/alerts")
async def list_channels(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    return await _list_page(request, session, engine)


@router.post("/alerts")
async def create_channel(
    request: Request, session: PageSession, engine: Engine, config: Config, form: CsrfForm
) -> Response:
    try:
        values = _values(form) | {"gid": int_or_none(text(form, "gid"))}
        row = await alerts.create_channel(engine, session.actor, values, config.alert_networks)
    except Invalid as exc:
        return await _list_page(request, session, engine, exc)
    return redirect(f"/alerts/{row['id']}")


async def _channel_page(
    request: Request, session: PageSession, engine: Engine, cid: int, error: Invalid | None = None
) -> HTMLResponse:
    row = await alerts.get_channel(engine, session.actor, cid)
    context = {
        "channel": row,
        "can_edit": session.actor.can(Action.EDIT, row["gid"]),
        "events": EVENTS,
        "kinds": KINDS,
        "error": error,
    }
    return render(request, "alert_channel.html", session, context, error.status if error else 200)


@router.get("/alerts/{cid}")
async def channel(
    request: Request, cid: Int64, session: PageSession, engine: Engine
) -> HTMLResponse:
    return await _channel_page(request, session, engine, cid)


@router.post("/alerts/{cid}")
async def update_channel(
    request: Request, cid: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    try:
        allowed = get_config(request).alert_networks
        await alerts.update_channel(engine, session.actor, cid, _values(form), allowed)
    except Invalid as exc:
        return await _channel_page(request, session, engine, cid, exc)
    return redirect(f"/alerts/{cid}")


@router.post("/alerts/{cid}/test")
async def send_test(cid: Int64, session: PageSession, engine: Engine, _form: CsrfForm) -> Response:
    await alerts.send_test(engine, session.actor, cid)
    return redirect(f"/alerts/{cid}")


@router.post("/alerts/{cid}/delete")
async def delete_channel(
    cid: Int64, session: PageSession, engine: Engine, _form: CsrfForm
) -> Response:
    await alerts.delete_channel(engine, session.actor, cid)
    return redirect("/alerts")
