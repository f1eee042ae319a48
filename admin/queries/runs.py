"""Runs (`task_process`), their live output chunks (`task_output`) and the commands table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row, clamp_limit, in_scope
from center.store._util import new_id
from center.tables import agents, center_command, crontab, task_output, task_process
from protocol.vocabulary import CommandKind

_LIST_COLUMNS = [c for c in task_process.c if c.name != "result"]


@dataclass(frozen=True, slots=True)
class RunFilter:
    task_id: int | None = None
    aid: int | None = None
    status: str | None = None
    since_us: int | None = None  # scheduled at or after
    until_us: int | None = None  # scheduled before
    before_id: int | None = None  # the page after the one that ended with this id
    limit: int = 100


def _joined(columns: list[Any], gids: frozenset[int] | None) -> Select[Any]:
    query = select(
        *columns,
        crontab.c.name.label("rule_name"),
        crontab.c.gid.label("rule_gid"),
        agents.c.name.label("agent_name"),
    )
    rules = task_process.join if gids is not None else task_process.outerjoin
    return query.select_from(
        rules(crontab, crontab.c.id == task_process.c.task_id).outerjoin(
            agents, agents.c.id == task_process.c.aid
        )
    ).where(in_scope(crontab.c.gid, gids))


async def list_runs(conn: AsyncConnection, gids: frozenset[int] | None, f: RunFilter) -> list[Row]:
    """Runs of the rules the scope sees, newest first, without their output.

    A deferred join: the page's ids are found first from an index alone (the filters' columns
    and the id are in it), then only those rows are read. Sorting a busy rule's 75,000 rows
    by id costs milliseconds that way; reading them all to sort them took seconds."""
    tp = task_process.c
    page = select(tp.id)
    if gids is not None:
        page = page.where(tp.task_id.in_(select(crontab.c.id).where(in_scope(crontab.c.gid, gids))))
    for column, value in ((tp.task_id, f.task_id), (tp.aid, f.aid), (tp.status, f.status)):
        if value is not None:
            page = page.where(column == value)
    if f.since_us is not None:
        page = page.where(tp.sched_us >= f.since_us)
    if f.until_us is not None:
        page = page.where(tp.sched_us < f.until_us)
    if f.before_id is not None:
        page = page.where(tp.id < f.before_id)
    ids = page.order_by(tp.id.desc()).limit(clamp_limit(f.limit)).subquery("page")
    query = (
        _joined(_LIST_COLUMNS, gids)
        .join_from(task_process, ids, ids.c.id == tp.id)
        .order_by(tp.id.desc())
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def run_by_id(conn: AsyncConnection, run_id: int) -> Row | None:
    query = _joined(list(task_process.c), None).where(task_process.c.id == run_id)
    found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None


async def run_state(conn: AsyncConnection, run_id: int) -> Row | None:
    """The few columns a live tail polls."""
    query = select(
        task_process.c.status, task_process.c.code, task_process.c.signal, task_process.c.end
    ).where(task_process.c.id == run_id)
    found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None


async def output_chunks(
    conn: AsyncConnection, runid: str, from_offset: int, limit: int = 200
) -> list[tuple[int, bytes]]:
    """Live output chunks that end after `from_offset`, in order, as (offset, data)."""
    query = (
        select(task_output.c.offset, task_output.c.data)
        .where(task_output.c.runid == runid, task_output.c.offset >= 0)
        .order_by(task_output.c.offset, task_output.c.id)
        .limit(limit)
    )
    if from_offset:
        # Chunks are short, so one that starts up to 1 MiB before may still reach past it.
        query = query.where(task_output.c.offset > from_offset - (1 << 20))
    rows = (await conn.execute(query)).all()
    return [(int(o), bytes(d)) for o, d in rows if int(o) + len(d) > from_offset]


# ---------------------------------------------------------------- commands


async def insert_command(conn: AsyncConnection, values: Row) -> int:
    result = await conn.execute(insert(center_command).values(**values))
    return new_id(result)


async def command_by_id(conn: AsyncConnection, command_id: int) -> Row | None:
    query = select(center_command).where(center_command.c.id == command_id)
    found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None


async def commands_for(
    conn: AsyncConnection, *, task_id: int | None = None, runid: str | None = None, limit: int = 20
) -> list[Row]:
    """The newest commands about a rule, or about one run."""
    query = select(center_command).order_by(center_command.c.id.desc()).limit(limit)
    if task_id is not None:
        # A flow_run command's task_id is a workflow's id, not this rule's.
        query = query.where(
            center_command.c.task_id == task_id, center_command.c.kind != CommandKind.FLOW_RUN
        )
    if runid is not None:
        query = query.where(center_command.c.runid == runid)
    return [dict(r) for r in (await conn.execute(query)).mappings()]
