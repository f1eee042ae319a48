"""Agents' run reports in: one transaction per batch, rows read and locked, then plain writes.

Per batch: the batch's run rows are read (locked: FOR UPDATE on MySQL, the writer lock on
SQLite), `center.report_writes` decides what each report changes, and the store writes just
that: an update by primary key of the columns a report carries for rows that exist (nearly
all: a run's row is written when it is planned), the guarded upsert for runs with no row, and
the rollups' sums. Repeats, reorderings and another agent's reports change nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import BindParameter

from center.report_writes import (
    FINISHED_GUARD,
    STARTED_GUARD,
    ReportWrites,
    Row,
    StoredRun,
    plan_writes,
    split_by_rule,
)
from center.store._prepared import prepare, with_in_list
from center.store._util import _chunks, _statuses_sql
from center.store.db import is_mysql
from center.store.rollups import fold, hold_writer
from center.tables import task_output, task_process
from protocol.clock import now_us as clock_us

# The columns each report sets (besides `status`); the rest of a row is the planner's.
STARTED_COLS = ("pid", "start", "run_user", "uid", "gid", "updated_us")
FINISHED_COLS = (
    "pid",
    "start",
    "end",
    "code",
    "signal",
    "reason",
    "result",
    "output_bytes",
    "truncated",
    "run_user",
    "uid",
    "gid",
    "updated_us",
)
_READ_CHUNK = 1_000  # runids per locking read
# A batch of at least SPLIT_FROM reports is written by WRITERS transactions at once (MySQL).
WRITERS = 2
SPLIT_FROM = 1_000
_DEADLOCK_TRIES = 3
_ER_LOCK_DEADLOCK = 1213  # MySQL's "Deadlock found when trying to get lock"
# What an INSERT of a row needs besides the reported columns (NOT NULL, no default).
_KEY_COLS = ("runid", "task_id", "sched_us")
_T = task_process.c
_ROW_ID: BindParameter[int] = bindparam("row_id")


async def record_reports(
    engine: AsyncEngine,
    started: list[Row],
    finished: list[Row],
    chunks: list[dict[str, Any]],
) -> None:
    """Apply agent reports; repeats and reorderings change nothing, and the runs that this
    write ends are added to their rollups. One transaction, or on MySQL, for a large batch,
    `WRITERS` at once, each with the reports of a range of rules (see `split_by_rule`): the
    server writes one while this process plans and renders another. A failure fails the
    whole call once every part has ended; parts that committed are then repeats next time
    (the output chunks are written after the parts)."""
    if len(started) + len(finished) < SPLIT_FROM or not is_mysql(engine):
        await _record_retried(engine, started, finished, chunks)
        return
    parts = split_by_rule(started, finished, WRITERS)
    ended = await asyncio.gather(
        *(_record_retried(engine, s, f, []) for s, f in parts), return_exceptions=True
    )
    for outcome in ended:
        if isinstance(outcome, BaseException):
            raise outcome
    # Output chunks are plain inserts, not repeats that change nothing: written once every
    # part is, so that a batch written again after a failed part does not add them twice.
    if chunks:
        await _record(engine, [], [], chunks)


async def _record_retried(
    engine: AsyncEngine, started: list[Row], finished: list[Row], chunks: list[dict[str, Any]]
) -> None:
    """`_record`, again at once if MySQL chose it as a deadlock's victim (rolled back whole):
    parts of one batch share no run nor rollup row, but InnoDB's gap locks on the rollup rows
    two parts create for a new hour may still cross."""
    for attempt in range(_DEADLOCK_TRIES):
        try:
            await _record(engine, started, finished, chunks)
            return
        except DBAPIError as exc:
            if attempt + 1 == _DEADLOCK_TRIES or not _is_deadlock(exc):
                raise


def _is_deadlock(exc: DBAPIError) -> bool:
    args: tuple[Any, ...] = getattr(exc.orig, "args", ())
    return bool(args) and args[0] == _ER_LOCK_DEADLOCK


async def _record(
    engine: AsyncEngine, started: list[Row], finished: list[Row], chunks: list[dict[str, Any]]
) -> None:
    """The reports in one transaction: their rows read and locked, written, rollups folded."""
    async with engine.begin() as conn:
        if started or finished:
            await hold_writer(conn)
            runids = {row["runid"] for row in started} | {row["runid"] for row in finished}
            plan = plan_writes(await stored_runs(conn, runids), started, finished)
            await _write(conn, plan)
            await fold(conn, plan.sums, clock_us())
        if chunks:
            await conn.execute(insert(task_output), chunks)


async def stored_runs(conn: AsyncConnection, runids: Iterable[str]) -> dict[str, StoredRun]:
    """runid → its row (`StoredRun`), locked until the transaction ends (absent: no row)."""
    query = with_in_list(conn.dialect, "stored_runs", lambda: _runs_query(conn), "runids")
    out: dict[str, StoredRun] = {}
    # In key order: two writers locking overlapping batches cannot deadlock.
    for chunk in _chunks(sorted(runids), _READ_CHUNK):
        out.update((row[1], row) for row in await query.all(conn, (), chunk))
    return out


def _runs_query(conn: AsyncConnection) -> Any:
    query = select(_T.id, _T.runid, _T.task_id, _T.sched_us, _T.status, _T.aid)
    query = query.where(_T.runid.in_(bindparam("runids", expanding=True)))
    return query.with_for_update() if is_mysql(conn) else query


async def _write(conn: AsyncConnection, plan: ReportWrites) -> None:
    mysql = is_mysql(conn)
    for cols, guard, rows in (
        (STARTED_COLS, STARTED_GUARD, plan.insert_started),
        (FINISHED_COLS, FINISHED_GUARD, plan.insert_finished),
    ):
        if rows:  # runs with no row: rare, and the guarded upsert is safe against a race
            await conn.execute(_upsert(mysql, cols, guard), rows)
    for cols, updates in (
        (STARTED_COLS, plan.update_started),
        (FINISHED_COLS, plan.update_finished),
    ):
        if updates:
            await _update_by_id(conn, cols, updates)


async def _update_by_id(
    conn: AsyncConnection, cols: Sequence[str], updates: list[tuple[int, Row]]
) -> None:
    """Set `cols` and `status` of rows known by id (read and locked in this transaction)."""
    names = (*cols, "status")
    key = f"report_by_id:{','.join(names)}"
    if is_mysql(conn):
        # MySQL has no multi-row UPDATE: an INSERT of the row's primary key with ON DUPLICATE
        # KEY UPDATE is one (the row exists and is locked, so it always takes the UPDATE
        # branch, found on the primary key first). The key columns are there only because an
        # INSERT must name every NOT NULL column without a default.
        def build() -> Any:
            stmt = mysql_dialect.insert(task_process)
            return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in names})

        stmt = prepare(conn.dialect, key, build, ("id", *_KEY_COLS, *names))
        await stmt.run(conn, stmt.tuples_with("id", updates))
        return
    stmt = prepare(conn.dialect, key, lambda: update(task_process).where(_T.id == _ROW_ID), names)
    await stmt.run(conn, stmt.tuples_with("row_id", updates))


def _upsert(mysql: bool, cols: tuple[str, ...], guard: frozenset[str]) -> Any:
    """INSERT a run row, or update the existing one unless its status is in `guard` or it
    belongs to another agent (a report never overwrites another agent's run)."""
    if mysql:
        stmt = mysql_dialect.insert(task_process)
        keep = or_(_T.status.in_(_statuses_sql(guard)), _T.aid != stmt.inserted.aid)
        # MySQL assigns left to right: `status` must come last, after the guards read it.
        pairs = [(c, func.if_(keep, _T[c], stmt.inserted[c])) for c in (*cols, "status")]
        return stmt.on_duplicate_key_update(pairs)
    lite = sqlite_dialect.insert(task_process)
    return lite.on_conflict_do_update(
        index_elements=["runid"],
        set_={c: lite.excluded[c] for c in (*cols, "status")},
        where=and_(_T.status.not_in(_statuses_sql(guard)), _T.aid == lite.excluded.aid),
    )
