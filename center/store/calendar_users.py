"""The calendar_ending check's reads: a cheap change stamp, and the enabled rules and
workflows that use some of the named calendars."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Table, func, select, true
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


def _users(table: Table, scheduled: Any, *where: Any) -> Any:
    """A rule's or a workflow's calendar columns, and whether it fires by its schedule now."""
    c = table.c
    on = (c.status == RuleStatus.ENABLED) & (c.rule != "") & (c.error == "") & scheduled
    return select(
        c.id, c.name, c.gid, c.calendar, c.calendar_fallback, c.rule, c.timezone, on
    ).where(*where)


def _rules(*where: Any) -> Any:
    return _users(crontab, crontab.c.is_daemon == 0, *where)


def _flows(*where: Any) -> Any:
    return _users(workflow, true(), *where)


async def _read(conn: AsyncConnection, rules: Any, flows: Any) -> list[CalendarUser]:
    out = []
    for kind, query in ((RULE, rules), (WORKFLOW, flows)):
        for ident, name, gid, cal, fallback, expr, zone, on in (await conn.execute(query)).all():
            out.append(CalendarUser(kind, ident, name, gid, cal, fallback, expr, zone, bool(on)))
    return out


async def calendar_users(
    conn: AsyncConnection, gids: Collection[int], names: Collection[str]
) -> list[CalendarUser]:
    """The rules and workflows of `gids` whose calendar is one of `names` (`enabled`: and
    that are on, scheduled and without an error). Not indexed: a scan, so the caller asks
    only when some calendar is ending, and rarely."""
    if not gids or not names:
        return []
    # The groups are sorted out here, not in the query: `gid IN (...)` makes SQLite walk the
    # gid index row by row (1.6 s for a million rules), while one pass over the table to match
    # the few calendar names takes 0.15 s.
    rules = _rules(crontab.c.calendar.in_(sorted(names)))
    flows = _flows(workflow.c.calendar.in_(sorted(names)))
    return [u for u in await _read(conn, rules, flows) if u.gid in gids]


async def changed_users(
    conn: AsyncConnection, rules_after: int, flows_after: int
) -> list[CalendarUser]:
    """Every rule and workflow changed after the marks (update_time, from its index), whatever
    its calendar or state now: the check updates what it knows of them."""
    return await _read(
        conn,
        _rules(crontab.c.update_time > rules_after),
        _flows(workflow.c.update_time > flows_after),
    )
