"""Rollups' SQL: run rows read before a status write, sums folded into run_rollup, rebuilt.

Every write that moves runs to a final status does, in its own transaction:
`before = await runs_before(conn, runids)`, the write, then
`await fold(conn, rollup.changes(before, writes, apply), now)`. The rows read are locked
(FOR UPDATE on MySQL; on SQLite the transaction already holds the one writer lock, see
`hold_writer`), so what the write changed is known exactly, and a repeated report counts once.
(Agents' reports do the same in `center.store.reports`, deciding their writes in Python.)

`fold` is one upsert per (rule, hour) per batch: the database adds the counts and sums and
keeps the larger maximum; the histograms, text, are read (locked) and merged here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from center import rollup
from center.rollup import COUNTED, Figure, RunFacts, Sums
from center.store._prepared import Prepared, prepare, with_in_list
from center.store._util import _chunks
from center.store.db import create_engine, is_mysql
from center.tables import crontab, run_rollup, task_process
from protocol import statuses
from protocol.clock import now_us as clock_us

_FACTS = (
    task_process.c.runid,
    task_process.c.task_id,
    task_process.c.sched_us,
    task_process.c.status,
    task_process.c.start,
    task_process.c.end,
    task_process.c.aid,
)
_KEYS = ("task_id", "hour_us")
_READ_CHUNK = 1_000  # rules per read of one hour's rollups
_READ_HISTS = select(run_rollup.c.task_id, run_rollup.c.dur_hist, run_rollup.c.late_hist).where(
    run_rollup.c.hour_us == bindparam("hour_us"),
    run_rollup.c.task_id.in_(bindparam("task_ids", expanding=True)),
)
_REBUILD_RULES = 20  # rules per rebuild transaction: bounded memory and locks


def facts(row: Mapping[Any, Any]) -> RunFacts:
    """A run row (or a row about to be written) as rollups see it."""
    return RunFacts(
        runid=str(row["runid"]),
        task_id=int(row["task_id"]),
        sched_us=int(row["sched_us"]),
        status=str(row["status"]),
        start_us=int(row.get("start") or 0),
        end_us=int(row.get("end") or 0),
        aid=int(row.get("aid") or 0),
    )


async def hold_writer(conn: AsyncConnection) -> None:
    """Make this transaction SQLite's writer now, before it reads what it will change (the
    driver begins a transaction at the first write; reads before it would see an older
    state). MySQL locks the rows it reads instead."""
    if not is_mysql(conn):
        await conn.execute(update(run_rollup).where(text("0")).values(updated_us=0))


async def runs_before(conn: AsyncConnection, runids: Iterable[str]) -> dict[str, RunFacts]:
    """runid → the run row as it is now, locked until the transaction ends (absent: no row)."""
    out: dict[str, RunFacts] = {}
    mysql = is_mysql(conn)
    for chunk in _chunks(sorted(set(runids))):
        query = select(*_FACTS).where(task_process.c.runid.in_(chunk))
        if mysql:
            query = query.with_for_update()
        for row in (await conn.execute(query)).mappings():
            out[str(row["runid"])] = facts(row)
    return out


async def fold(conn: AsyncConnection, sums: Mapping[tuple[int, int], Sums], now_us: int) -> None:
    """Add `sums` to their rollup rows: read their histograms (locked), write. The counts,
    sums and maxima are added by the database itself; only a histogram (text,
    "bucket:count,…") is merged here, so only those are read."""
    keys = sorted(k for k, s in sums.items() if s.counts and any(s.counts.values()))
    if not keys:
        return
    await hold_writer(conn)
    stored = await _read_hists(conn, keys)
    missing = [k for k in keys if k not in stored]
    if missing and is_mysql(conn):
        # A locking read locks no row that is not there (READ COMMITTED: no gap locks), and
        # another transaction may create one meanwhile: create them (or lock the one just
        # made), then read those again. SQLite's one writer is this transaction already.
        await _write(conn, [{"task_id": t, "hour_us": h} for t, h in missing], _Upsert.LOCK)
        stored |= await _read_hists(conn, missing)
    added = [_added(k, stored.get(k), sums[k], now_us) for k in keys]
    await _write_tuples(conn, _ADDED, added, _Upsert.ADD)


async def _read_hists(
    conn: AsyncConnection, keys: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], tuple[str, str]]:
    """The histograms (duration, lateness) of these rollup rows, locked until the transaction
    ends; by hour then rules (a batch touches an hour or two): ranges of the primary key,
    where a list of (task_id, hour_us) pairs would be a scan."""
    by_hour: dict[int, list[int]] = {}
    for task_id, hour_us in keys:
        by_hour.setdefault(hour_us, []).append(task_id)
    mysql = is_mysql(conn)
    query = with_in_list(
        conn.dialect,
        "rollup_hists",
        lambda: _READ_HISTS.with_for_update() if mysql else _READ_HISTS,
        "task_ids",
    )
    out: dict[tuple[int, int], tuple[str, str]] = {}
    for hour_us, task_ids in by_hour.items():
        for chunk in _chunks(task_ids, _READ_CHUNK):
            for task_id, dur, late in await query.all(conn, (hour_us,), chunk):
                out[(int(task_id), hour_us)] = (str(dur or ""), str(late or ""))
    return out


# The columns of `_added`'s tuples, in order.
_ADDED = (
    "task_id",
    "hour_us",
    *(f"n_{s}" for s in COUNTED),
    *(f"{name}_{part}" for name in ("dur", "late") for part in ("n", "sum_ms", "max_ms", "hist")),
    "updated_us",
)


def _added(
    key: tuple[int, int], hists: tuple[str, str] | None, delta: Sums, now_us: int
) -> tuple[Any, ...]:
    """What `delta` adds to a rollup row (`_Upsert.ADD`, columns `_ADDED`), its histograms
    merged with the stored ones. A tuple: one per rollup row of a batch, a thousand a batch."""
    counts = delta.counts
    dur, late = hists or ("", "")
    d, la = delta.duration, delta.lateness
    return (
        key[0],
        key[1],
        *[counts.get(s, 0) for s in COUNTED],
        d.n,
        d.sum_ms,
        d.max_ms,
        rollup.add_to_hist(dur, d.hist),
        la.n,
        la.sum_ms,
        la.max_ms,
        rollup.add_to_hist(late, la.hist),
        now_us,
    )


class _Upsert(enum.Enum):
    LOCK = "lock"  # create missing rows and lock existing ones, changing nothing
    SET = "set"  # set every given column (a rebuild)
    ADD = "add"  # add counts and sums, keep the larger maximum, set histograms and time


def _upsert(mysql: bool, columns: Sequence[str], how: _Upsert) -> Any:
    """An upsert of run_rollup rows, for executemany (compiled once, see `_write`). MySQL
    takes an exclusive lock on a duplicate of INSERT … ON DUPLICATE KEY UPDATE."""
    changed = [c for c in columns if c not in _KEYS]
    if mysql:
        stmt = mysql_dialect.insert(run_rollup)
        if how is _Upsert.LOCK:
            return stmt.on_duplicate_key_update(task_id=run_rollup.c.task_id)
        return stmt.on_duplicate_key_update(_set(changed, stmt.inserted, func.greatest, how))
    lite = sqlite_dialect.insert(run_rollup)
    if how is _Upsert.LOCK:  # SQLite: this transaction already holds the one writer lock
        return lite.on_conflict_do_nothing(index_elements=list(_KEYS))
    set_ = _set(changed, lite.excluded, func.max, how)
    return lite.on_conflict_do_update(index_elements=list(_KEYS), set_=set_)


def _set(changed: Sequence[str], new: Any, bigger: Any, how: _Upsert) -> dict[str, Any]:
    """The SET of an upsert's update: the new values, or (ADD) the stored ones plus them."""
    values: dict[str, Any] = {c: new[c] for c in changed}
    if how is _Upsert.ADD:
        old = run_rollup.c
        for c in changed:
            if c.endswith("_max_ms"):
                values[c] = bigger(old[c], new[c])
            elif c.startswith("n_") or c.endswith(("_n", "_sum_ms")):
                values[c] = old[c] + new[c]
    return values


async def _write(conn: AsyncConnection, rows: list[dict[str, Any]], how: _Upsert) -> None:
    """The upsert, compiled once per column set and run on plain tuples."""
    if not rows:
        return
    columns = tuple(rows[0])
    stmt = _prepared(conn, columns, how)
    await stmt.run(conn, stmt.tuples(rows))


async def _write_tuples(
    conn: AsyncConnection, columns: tuple[str, ...], rows: list[tuple[Any, ...]], how: _Upsert
) -> None:
    """The upsert of rows given as tuples of `columns` (the table's order)."""
    if not rows:
        return
    stmt = _prepared(conn, columns, how)
    if stmt.names != columns:  # compiled in the table's order: the tuples must follow it
        raise RuntimeError(f"rollup upsert: parameters in another order: {stmt.names}")
    await stmt.run(conn, rows)


def _prepared(conn: AsyncConnection, columns: tuple[str, ...], how: _Upsert) -> Prepared:
    mysql = is_mysql(conn)
    key = f"rollup:{how.value}:{','.join(columns)}"
    return prepare(conn.dialect, key, lambda: _upsert(mysql, columns, how), columns)


def _row(key: tuple[int, int], s: Sums, now_us: int) -> dict[str, Any]:
    row: dict[str, Any] = {"task_id": key[0], "hour_us": key[1], "updated_us": now_us}
    row |= {f"n_{status}": s.counts.get(status, 0) for status in COUNTED}
    for name, figure in (("dur", s.duration), ("late", s.lateness)):
        row |= {
            f"{name}_n": figure.n,
            f"{name}_sum_ms": figure.sum_ms,
            f"{name}_max_ms": figure.max_ms,
            f"{name}_hist": rollup.encode_hist(figure.hist),
        }
    return row


def sums_of(row: Mapping[Any, Any]) -> Sums:
    """A run_rollup row as sums."""

    def figure(name: str) -> Figure:
        return Figure(
            n=int(row[f"{name}_n"] or 0),
            sum_ms=int(row[f"{name}_sum_ms"] or 0),
            max_ms=int(row[f"{name}_max_ms"] or 0),
            hist=rollup.decode_hist(str(row[f"{name}_hist"] or "")),
        )

    counts = {s: int(row[f"n_{s}"] or 0) for s in COUNTED if row[f"n_{s}"]}
    return Sums(counts=counts, duration=figure("dur"), lateness=figure("late"))


# ---------------------------------------------------------------- rebuild and retention


async def rebuild(engine: AsyncEngine, task_ids: Sequence[int], now_us: int) -> int:
    """Rollups of these rules built again from their run rows (runs stored before rollups
    existed, or a bulk load): each rule's rollups are replaced by what its rows say, a few
    rules per transaction. Run it with no center writing. Returns the rollup rows written."""
    written = 0
    for chunk in _chunks(sorted(task_ids), _REBUILD_RULES):
        async with engine.begin() as conn:
            await conn.execute(delete(run_rollup).where(run_rollup.c.task_id.in_(list(chunk))))
            query = select(*_FACTS).where(
                task_process.c.task_id.in_(list(chunk)),
                task_process.c.status.in_(sorted(statuses.FINAL)),
            )
            sums: dict[tuple[int, int], Sums] = {}
            result = await conn.stream(query.execution_options(yield_per=20_000))
            async for part in result.mappings().partitions():
                for row in part:
                    run = facts(row)
                    rollup.sums_for(sums, run.key()).add(run, +1)
            written += await write_sums(conn, sums, now_us)
    return written


async def rebuild_all(url: str) -> int:
    """`rebuild` of every rule (removed ones too) of the database at `url`."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            task_ids = list((await conn.scalars(select(crontab.c.id))).all())
        return await rebuild(engine, task_ids, clock_us())
    finally:
        await engine.dispose()


async def write_sums(
    conn: AsyncConnection, sums: Mapping[tuple[int, int], Sums], now_us: int
) -> int:
    """Rollup rows set to `sums` (not added: for a rebuild or a bulk load)."""
    keys = sorted(sums)
    for chunk in _chunks(keys, 1_000):
        await _write(conn, [_row(k, sums[k], now_us) for k in chunk], _Upsert.SET)
    return len(keys)


async def delete_old(engine: AsyncEngine, before_us: int) -> int:
    """Rollups of hours before `before_us` (they outlive the runs: kept for many months)."""
    async with engine.begin() as conn:
        result = await conn.execute(delete(run_rollup).where(run_rollup.c.hour_us < before_us))
    return int(result.rowcount)
