"""Calendars of a group: anyone in the group reads them; its admins create, edit and delete
them (audited). A calendar some rule names is not deleted, nor renamed from under it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin.actor import Actor
from admin.errors import Conflict, Invalid, NotFound
from admin.permissions import Action
from admin.queries import calendars, groups
from admin.services import audited
from center.calendars import check_name, group_calendar, normalized_days
from center.errors import RuleError
from i18n.marks import N_
from protocol.clock import now_us

FIELDS = ("name", "description", "base", "include", "exclude")
DESCRIPTION_CHARS = 255


def checked(values: dict[str, Any]) -> dict[str, Any]:
    """The columns to store; Invalid names the field (name, base, include, exclude)."""
    out = {}
    for name in FIELDS:
        value = values.get(name, "")
        if not isinstance(value, str):
            raise Invalid(name, "must be text")
        out[name] = value.strip()
    if len(out["description"]) > DESCRIPTION_CHARS:
        raise Invalid("description", f"is longer than {DESCRIPTION_CHARS} characters")
    try:
        check_name(out["name"])
        for field in ("include", "exclude"):
            out[field] = normalized_days(out[field], field)
        group_calendar(out["name"], out["base"], out["include"], out["exclude"])
    except RuleError as exc:
        raise Invalid(exc.field, exc.reason) from None
    return out


async def list_calendars(
    engine: AsyncEngine, actor: Actor, gid: int | None = None
) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await calendars.list_calendars(conn, actor.scope)
    return [r for r in rows if gid is None or r["gid"] == gid]


async def names(engine: AsyncEngine, actor: Actor) -> list[str]:
    """The names of the calendars of the groups one can see (for the rule form's list)."""
    return sorted({r["name"] for r in await list_calendars(engine, actor)})


async def _visible(
    conn: AsyncConnection, actor: Actor, calendar_id: int, action: Action
) -> dict[str, Any]:
    row = await calendars.calendar_by_id(conn, calendar_id)
    if row is None or not actor.can(Action.VIEW, row["gid"]):
        raise NotFound("no such calendar")
    actor.require(action, row["gid"], N_("calendar"))
    return row


async def get_calendar(engine: AsyncEngine, actor: Actor, calendar_id: int) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = await _visible(conn, actor, calendar_id, Action.VIEW)
        row["rules"] = await calendars.rules_using(conn, row["gid"], row["name"])
    return row


async def _name_free(conn: AsyncConnection, gid: int, name: str, calendar_id: int | None) -> None:
    existing = await calendars.calendar_by_name(conn, gid, name)
    if existing is not None and existing["id"] != calendar_id:
        raise Conflict(f"the group has a calendar named {name!r} already", "name")


async def create_calendar(
    engine: AsyncEngine, actor: Actor, gid: int, values: dict[str, Any]
) -> dict[str, Any]:
    actor.require(Action.EDIT, gid, N_("calendar"))
    columns = checked(values)
    now = now_us()
    async with engine.begin() as conn:
        if await groups.group_by_id(conn, gid) is None:
            raise NotFound("no such group")
        await _name_free(conn, gid, columns["name"], None)
        calendar_id = await calendars.insert_calendar(conn, columns | {"gid": gid}, now)
        after = await calendars.calendar_by_id(conn, calendar_id)
        await audited(
            conn, actor, now, "calendar.create", ("calendar", calendar_id, gid), after=after
        )
    return after or {}


async def update_calendar(
    engine: AsyncEngine, actor: Actor, calendar_id: int, values: dict[str, Any]
) -> dict[str, Any]:
    now = now_us()
    async with engine.begin() as conn:
        before = await _visible(conn, actor, calendar_id, Action.EDIT)
        gid = before["gid"]
        columns = checked({k: before[k] for k in FIELDS} | values)
        if columns["name"] != before["name"]:
            await _name_free(conn, gid, columns["name"], calendar_id)
            await _unused(conn, before, deleting=False)
        await calendars.update_calendar(conn, calendar_id, columns, now)
        after = await calendars.calendar_by_id(conn, calendar_id)
        target = ("calendar", calendar_id, gid)
        await audited(conn, actor, now, "calendar.update", target, before=before, after=after)
    return after or {}


async def delete_calendar(engine: AsyncEngine, actor: Actor, calendar_id: int) -> None:
    now = now_us()
    async with engine.begin() as conn:
        before = await _visible(conn, actor, calendar_id, Action.EDIT)
        await _unused(conn, before, deleting=True)
        await calendars.delete_calendar(conn, calendar_id)
        target = ("calendar", calendar_id, before["gid"])
        await audited(conn, actor, now, "calendar.delete", target, before=before)


async def _unused(conn: AsyncConnection, row: dict[str, Any], *, deleting: bool) -> None:
    rules = await calendars.rules_using(conn, row["gid"], row["name"])
    flows = await calendars.workflows_using(conn, row["gid"], row["name"])
    users = [f"rule {i}" for i in rules[:10]] + [f"workflow {i}" for i in flows[:10]]
    if users:
        listed, name = ", ".join(users), row["name"]
        raise Conflict(  # two whole sentences: each is one entry of the catalogs
            f"{listed} use calendar {name!r}: it cannot be deleted"
            if deleting
            else f"{listed} use calendar {name!r}: it cannot be renamed"
        )
