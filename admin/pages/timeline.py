"""Page: the timeline, runs as bars per agent or per rule over a window (drawn on the server)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from admin.errors import Invalid
from admin.pages._common import int_or_none, us_from_local
from admin.services import agents, rules, stats
from admin.translate import reader_of
from admin.web import Engine, PageSession, render
from i18n.zones import zone
from protocol.clock import now_us

router = APIRouter()
PRESETS_H = (1, 6, 24)


def _hours(value: str | None) -> float:
    try:
        return float(value) if value else 1.0
    except ValueError:
        raise Invalid("hours", "must be a number of hours") from None


def _local(us: int, timezone: str) -> str:
    """µs as a datetime-local field's value (wall time in the reader's zone)."""
    moment = datetime.fromtimestamp(us / 1e6, UTC).astimezone(zone(timezone) or UTC)
    return moment.strftime("%Y-%m-%dT%H:%M")


@router.get("/timeline")
async def timeline(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    q = request.query_params
    lane = q.get("lane") or "agent"
    reader = reader_of(request)
    since, until = (
        us_from_local(q.get("from"), reader.timezone),
        us_from_local(q.get("to"), reader.timezone),
    )
    start, end = stats.window_of(since, until, _hours(q.get("hours")), now_us())
    rule, agent = int_or_none(q.get("rule")), int_or_none(q.get("agent"))
    chart, cut = await stats.timeline(
        engine,
        session.actor,
        (start, end),
        lane,
        task_id=rule,
        aid=agent,
        words=reader.words.gettext,
        timezone=reader.timezone,
    )
    context = {
        "rules": await rules.list_rules(engine, session.actor),
        "agents": await agents.list_agents(engine, session.actor),
        "filters": {"rule": q.get("rule", ""), "agent": q.get("agent", "")},
        "chart": chart,
        "cut": cut,
        "max_bars": stats.TIMELINE_MAX_BARS,
        "lane": lane,
        "presets": PRESETS_H,
        "window": {"from": _local(start, reader.timezone), "to": _local(end, reader.timezone)},
        "hours": q.get("hours") or ("" if q.get("from") else "1"),
    }
    return render(request, "timeline.html", session, context)
