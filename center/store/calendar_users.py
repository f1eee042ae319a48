"""The calendar_ending check's reads: a cheap change stamp, and the enabled rules and
workflows that use some of the named calendars."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from center.alerts.calendar_ending import RULE, WORKFLOW, CalendarUser
from center.tables import calendar, crontab, workflow
from protocol.vocabulary import RuleStatus

# One row from two indexes (update_time of crontab and workflow) and the small calendar table:
# any edit, pause, deletion or calendar change moves it. Built once: it runs every poll.
_STAMP = select(
    select(func.coalesce(func.max(crontab.c.update_time), 0)).scalar_subquery(),
    select(func.coalesce(func.max(workflow.c.update_time), 0)).scalar_subquery(),
    select(func.count()).select_from(calendar).scalar_subquery(),
    select(func.coalesce(func.max(calendar.c.update_time), 0)).scalar_subquery(),
    select(func.coalesce(func.sum(calendar.c.id), 0)).scalar_subquery(),
)


async def calendar_stamp(conn: AsyncConnection) -> tuple[int, ...]:
    """Changes whenever a rule, a workflow or a group calendar does."""
    return tuple(int(v) for v in (await conn.execute(_STAMP)).one())


async def calendar_users(
    conn: AsyncConnection, gids: Collection[int], names: Collection[str]
) -> list[CalendarUser]:
    """The enabled, scheduled rules and workflows of `gids` whose calendar is one of `names`.
    Not indexed: a scan, so the caller asks only when some calendar is ending, and rarely."""
    if not gids or not names:
        return []
    rules = select(
        crontab.c.id,
        crontab.c.name,
        crontab.c.gid,
        crontab.c.calendar,
        crontab.c.calendar_fallback,
        crontab.c.rule,
        crontab.c.timezone,
    ).where(
        crontab.c.calendar.in_(sorted(names)),
        crontab.c.gid.in_(sorted(gids)),
        crontab.c.status == RuleStatus.ENABLED,
        crontab.c.is_daemon == 0,
        crontab.c.rule != "",
        crontab.c.error == "",
    )
    flows = select(
        workflow.c.id,
        workflow.c.name,
        workflow.c.gid,
        workflow.c.calendar,
        workflow.c.calendar_fallback,
        workflow.c.rule,
        workflow.c.timezone,
    ).where(
        workflow.c.calendar.in_(sorted(names)),
        workflow.c.gid.in_(sorted(gids)),
        workflow.c.status == RuleStatus.ENABLED,
        workflow.c.rule != "",
        workflow.c.error == "",
    )
    out = []
    for kind, query in ((RULE, rules), (WORKFLOW, flows)):
        for row in (await conn.execute(query)).all():
            out.append(CalendarUser(kind, *row))
    return out
