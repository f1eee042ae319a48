"""Groups' calendars in: the `calendar` rows, made into Calendar data for the rule book."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from center.calendars import Calendar, group_calendar
from center.errors import RuleError
from center.tables import calendar

log = structlog.get_logger("center.calendars")


async def load_calendars(
    conn: AsyncConnection, gid: int | None = None
) -> dict[tuple[int, str], Calendar]:
    """Every group's calendars (or one group's) by (gid, name). A row that does not parse (it
    was written around the admin's checks) is left out: the rules using it show why."""
    query = select(calendar)
    if gid is not None:
        query = query.where(calendar.c.gid == gid)
    out = {}
    for row in (await conn.execute(query)).mappings():
        try:
            out[(row["gid"], row["name"])] = _from_row(row)
        except RuleError as exc:
            log.error("calendar.invalid", gid=row["gid"], name=row["name"], error=str(exc))
    return out


def _from_row(row: Any) -> Calendar:
    return group_calendar(row["name"], row["base"], row["include"], row["exclude"])
