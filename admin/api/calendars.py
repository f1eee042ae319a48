"""API: a group's calendars (business days to run on, or not to)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from admin.api.models import CalendarIn, CalendarPatch
from admin.api.responses import CalendarOut
from admin.services import calendars
from admin.web import ApiActor, Engine, Int64

router = APIRouter(tags=["calendars"])


@router.get("/calendars", response_model=list[CalendarOut])
async def list_calendars(
    actor: ApiActor, engine: Engine, gid: Int64 | None = None
) -> list[dict[str, Any]]:
    """The calendars of your groups (or of `gid`); built-in ones (weekdays, cn-workdays,
    cn-holidays) are not listed: every group has them."""
    return await calendars.list_calendars(engine, actor, gid)


@router.post("/calendars", status_code=status.HTTP_201_CREATED, response_model=CalendarOut)
async def create_calendar(body: CalendarIn, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Needs the admin role in `gid`; `include`/`exclude`: dates and ranges a..b."""
    values = body.changes()
    gid = values.pop("gid")
    return await calendars.create_calendar(engine, actor, gid, values)


@router.get("/calendars/{calendar_id}", response_model=CalendarOut)
async def get_calendar(calendar_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """The calendar with `rules`: the ids of the rules that name it."""
    return await calendars.get_calendar(engine, actor, calendar_id)


@router.patch("/calendars/{calendar_id}", response_model=CalendarOut)
async def update_calendar(
    calendar_id: Int64, body: CalendarPatch, actor: ApiActor, engine: Engine
) -> dict[str, Any]:
    """Rules using it are re-planned by the center within a poll."""
    return await calendars.update_calendar(engine, actor, calendar_id, body.changes())


@router.delete("/calendars/{calendar_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_calendar(calendar_id: Int64, actor: ApiActor, engine: Engine) -> None:
    """Refused (409) while a rule or workflow names it."""
    await calendars.delete_calendar(engine, actor, calendar_id)
