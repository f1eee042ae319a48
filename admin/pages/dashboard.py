"""Page: the dashboard."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from admin.chart import runs_chart
from admin.services import dashboard, fleet
from admin.translate import reader_of
from admin.web import Engine, PageSession, render

router = APIRouter()


@router.get("/")
async def home(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    summary = await dashboard.summary(engine, session.actor)
    reader = reader_of(request)
    hourly, now_hour = summary.pop("hourly"), summary.pop("now_hour")
    summary["chart"] = runs_chart(hourly, now_hour, reader.words.gettext, reader.timezone)
    summary["short_services"] = await fleet.shortfalls(engine, session.actor)
    return render(request, "dashboard.html", session, summary)
