"""Rules in: the crontab rows and their targets, and the notes the center writes back."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center.rules import Rule, RuleFactory
from center.store._util import _chunks
from center.tables import (
    calendar,
    center_command,
    crontab,
    crontab_agent,
    workflow,
)
from protocol.vocabulary import CommandStatus

# A million rules come in a chunk at a time, each row made into a Rule at once: no mapping
# per row, and no second copy of the whole table held while the rules are built.
LOAD_CHUNK = 20_000
_RULE_COLUMNS = [c for c in crontab.c if c.name in RuleFactory.FIELDS]


async def load_rules(engine: AsyncEngine, since_us: int | None = None) -> list[Rule]:
    """Every rule (or those updated after `since_us`), deleted ones included."""
    query = select(*_RULE_COLUMNS)
    if since_us is not None:
        query = query.where(crontab.c.update_time > since_us)
    async with engine.connect() as conn:
        return await conn.run_sync(_read_rules, query, since_us is None)


def _read_rules(conn: Connection, query: Any, everything: bool) -> list[Rule]:
    make = RuleFactory([c.name for c in _RULE_COLUMNS])
    if not everything:  # a few changed rules, and their targets by id
        changed = conn.execute(query).all()
        targets = _targets(conn, [row[0] for row in changed])
        return [make(row, targets.get(row[0], ())) for row in changed]
    # From a server-side cursor a chunk at a time: never the whole table held twice.
    options = {"stream_results": True, "max_row_buffer": LOAD_CHUNK}
    result = conn.execution_options(**options).execute(query)
    rules: list[Rule] = []
    while chunk := result.fetchmany(LOAD_CHUNK):
        rules.extend(make(row) for row in chunk)
    # The targets after the rules, once the cursor is done. Each read sees what was committed
    # when it ran (READ COMMITTED; SQLite outside a transaction), so a rule made between the
    # two reads, read the other way round, came without its targets and ran nowhere until
    # its next edit. This way such a rule is not read at all, and a later poll reads it whole.
    targets = _targets(conn, None)
    for rule in rules:
        if agents := targets.get(rule.id):
            make.set_targets(rule, agents)
    return rules


def _targets(conn: Connection, task_ids: list[int] | None) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    if task_ids is None:
        batches: Iterable[Any] = [select(crontab_agent)]
    else:
        batches = (
            select(crontab_agent).where(crontab_agent.c.task_id.in_(chunk))
            for chunk in _chunks(task_ids)
        )
    for query in batches:
        for task_id, aid in conn.execute(query):
            out[task_id].append(aid)
    return out


class Probe(NamedTuple):
    """What every poll of the rules finds, before reading any rule."""

    calendars: tuple[int, int, int]  # as calendars_fingerprint
    newest_rule_us: int  # the newest rule's update_time
    workflows: tuple[int, int]  # as workflows_stamp: newest update_time, count
    pending_command: int  # the oldest pending center_command's id, 0 if none


# Built once: the poll runs twice a second, and making the statement cost more than running it.
# One statement for what would otherwise be three polls (rules, workflows, commands), each a
# few round trips to the database thread: all indexed reads of a row or two.
_PROBE = select(
    select(func.count()).select_from(calendar).scalar_subquery(),
    select(func.coalesce(func.max(calendar.c.update_time), 0)).scalar_subquery(),
    select(func.coalesce(func.sum(calendar.c.id), 0)).scalar_subquery(),
    select(func.coalesce(func.max(crontab.c.update_time), 0)).scalar_subquery(),
    select(func.coalesce(func.max(workflow.c.update_time), 0)).scalar_subquery(),
    select(func.count()).select_from(workflow).scalar_subquery(),
    select(func.coalesce(func.min(center_command.c.id), 0))
    .where(center_command.c.status == CommandStatus.PENDING)
    .scalar_subquery(),
)


async def rules_probe(engine: AsyncEngine) -> Probe:
    """What the rules poll looks at before reading any rule, in one query: the calendars'
    fingerprint, the newest rule's update_time (from its index), the workflows' stamp and
    whether a command waits. Most polls find all unchanged and read nothing else."""
    async with engine.connect() as conn:
        row = (await conn.execute(_PROBE)).one()
    count, newest_calendar, ids, newest_rule, newest_flow, flows, command = (int(v) for v in row)
    return Probe((count, newest_calendar, ids), newest_rule, (newest_flow, flows), command)


FINGERPRINT_MOD = 1_000_000_007


async def rules_fingerprint(engine: AsyncEngine) -> tuple[int, ...]:
    """Changes when rows are hard-deleted or targets edited without touching update_time."""
    async with engine.connect() as conn:
        a = (
            await conn.execute(
                select(
                    func.count(),
                    # Modulo a prime: a sum of 100k µs timestamps would overflow 64 bits.
                    func.coalesce(func.sum(crontab.c.update_time % FINGERPRINT_MOD), 0),
                    func.coalesce(func.max(crontab.c.update_time), 0),
                    func.coalesce(func.sum(crontab.c.status), 0),
                )
            )
        ).one()
        b = (
            await conn.execute(
                select(
                    func.count(),
                    func.coalesce(
                        func.sum(
                            (crontab_agent.c.task_id * 7919 + crontab_agent.c.aid) % FINGERPRINT_MOD
                        ),
                        0,
                    ),
                ).select_from(crontab_agent)
            )
        ).one()
    return tuple(int(v) for v in (*a, *b))


async def set_rule_error(engine: AsyncEngine, task_id: int, error: str) -> None:
    """Store why a rule cannot be planned ("" clears it); never bumps update_time."""
    async with engine.begin() as conn:
        await conn.execute(
            update(crontab)
            .where(crontab.c.id == task_id, crontab.c.error != error[:500])
            .values(error=error[:500])
        )


async def rule_notices(engine: AsyncEngine) -> dict[int, str]:
    """The planning notes on file (task_id → notice), for a new term to clear those that no
    longer hold: a leader only writes a note when it differs from what it last wrote."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(crontab.c.id, crontab.c.notice).where(crontab.c.notice != "")
        )
        return {task_id: notice for task_id, notice in rows}


async def set_rule_notice(engine: AsyncEngine, task_id: int, notice: str) -> None:
    """Store a non-fatal planning note on a rule ("" clears it); never bumps update_time."""
    async with engine.begin() as conn:
        await conn.execute(
            update(crontab)
            .where(crontab.c.id == task_id, crontab.c.notice != notice[:500])
            .values(notice=notice[:500])
        )
