"""Page: the dashboard."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from admin.services import dashboard, fleet
from admin.web import Engine, PageSession, render

router = APIRouter()


@router.get("/")
async def home(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    summary = await dashboard.summary(engine, session.actor)
    summary["short_services"] = await fleet.shortfalls(engine, session.actor)
    return render(request, "dashboard.html", session, summary)
