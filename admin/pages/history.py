"""Pages: a rule's history — its versions, the diff of two, and rollback to one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from admin.errors import AdminError, Invalid
from admin.pages._common import CsrfForm, int_or_none, redirect, text
from admin.services import history
from admin.web import Engine, Int64, PageSession, render

router = APIRouter()


async def _history_page(
    request: Request,
    session: PageSession,
    engine: Engine,
    task_id: int,
    error: AdminError | None = None,
) -> HTMLResponse:
    context = await history.overview(engine, session.actor, task_id)
    context |= {"error": error, "rolled_back": int_or_none(request.query_params.get("rolled"))}
    return render(request, "rule_history.html", session, context, error.status if error else 200)


@router.get("/rules/{task_id}/history")
async def rule_history(
    request: Request, task_id: Int64, session: PageSession, engine: Engine
) -> HTMLResponse:
    return await _history_page(request, session, engine, task_id)


@router.get("/rules/{task_id}/diff")
async def rule_diff(
    request: Request, task_id: Int64, session: PageSession, engine: Engine
) -> HTMLResponse:
    """Field by field, old → new; `from` and `to` are version numbers (default: the last change)."""
    q = request.query_params
    old, new = int_or_none(q.get("from")), int_or_none(q.get("to"))
    context = await history.overview(engine, session.actor, task_id)
    context["diff"] = await history.compare(engine, session.actor, task_id, old, new)
    return render(request, "rule_diff.html", session, context)


@router.post("/rules/{task_id}/rollback")
async def rollback(
    request: Request, task_id: Int64, session: PageSession, engine: Engine, form: CsrfForm
) -> Response:
    number = int_or_none(text(form, "version"))
    try:
        if number is None:
            raise Invalid("version", "give the number of a version")
        row = await history.rollback(engine, session.actor, task_id, number)
    except Invalid as exc:  # the old version is no longer valid: say which field, stay here
        return await _history_page(request, session, engine, task_id, exc)
    return redirect(f"/rules/{task_id}/history?rolled={row['version']}")
