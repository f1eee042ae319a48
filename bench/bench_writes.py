"""Result writes benchmark: the center's run writes into SQLite and MariaDB, in rows/s.

Run: .venv/bin/python bench/bench_writes.py [N] [--sqlite-only] [--with-starts]
                                           [--gc-scans-workload]
(N runs, default 100000; --with-starts sends a run_started before each run_finished, as for runs
longer than the agent's start-report delay; the last flag leaves the bench's own workload in the
collector's scans)
"""

# The center's real write path (center.store, center.intake) on a fresh database of each kind,
# for N runs of RULES rules a second on AGENTS agents, each run as the center writes it:
#
# 1. planned:    store.insert_planned, PLAN_CHUNK runs per fenced transaction (the leader's tick);
# 2. dispatched: store.set_run_status planned -> dispatched, one call per second's runs (the
#                store cuts it into transactions of _IN_CHUNK rows);
# 3. reports:    each run's RunFinished (its runs last 250 ms, under the agent's default
#                start-report delay: the agent sends the finish alone, marked start_unsent),
#                or with --with-starts a RunStarted first (each second's runs start, then end),
#                through Intake.flush_reports, REPORT_BATCH reports per transaction, with its
#                log lines (JSON, to /dev/null) and metrics; a run's result counts as one row.
#                Its database share is the center's own store-write histogram.
#
# For reference, the same final rows through the bare driver (sqlite3, pymysql): executemany of
# REPORT_BATCH rows per commit, and single-row commits (on at most SINGLE_ROWS rows).
# SQLite is a temp file (WAL, synchronous=NORMAL, as center.store.db.create_engine sets it up);
# MariaDB is `UNITEDCRON_TEST_MYSQL` (default root@127.0.0.1:3306), in a throwaway database
# dropped at the end; unreachable, only SQLite is measured. Prints figures, asserts nothing.

from __future__ import annotations

import gc
import os
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pymysql
import uvloop
from sqlalchemy import func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.intake import REPORT_BATCH, Intake
from center.leader import PLAN_CHUNK
from center.metrics import CenterMetrics
from center.runs import PlannedRun, finished_row, plan_run, planned_row
from center.store._util import _IN_CHUNK
from center.store.db import create_engine, safe_url, upgrade_database
from center.tables import task_process
from protocol import statuses
from protocol.clock import now_us
from protocol.logs import configure_logging
from protocol.messages import Message, RunFinished, RunStarted

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000
RULES = 1_000  # runs per scheduled second: rules 1..RULES, rule k on agent k % AGENTS + 1
AGENTS = 10
OUTPUT = b"backup done: 1432 files, 212 MB in 3.1 s\n" * 3  # a short result, like most jobs
FAIL_EVERY = 20  # every 20th run exits 1
SINGLE_ROWS = 2_000
SERVER = os.environ.get("UNITEDCRON_TEST_MYSQL", "mysql+aiomysql://root@127.0.0.1:3306")
CENTER_STAGES = ("planned", "dispatched", "reports")


@dataclass(frozen=True, slots=True)
class Workload:
    runs: list[PlannedRun]
    reports: list[tuple[int, Message]]  # (aid, report) in the order the center receives them
    final_rows: list[dict[str, Any]]  # each run's row as the reports leave it, for the raw rows


@dataclass(frozen=True, slots=True)
class Result:
    db: str
    stage: str
    how: str
    rows: int
    seconds: float
    reports: int = 0
    worst_s: float = 0.0


def _started(run: PlannedRun, i: int) -> RunStarted:
    return RunStarted(
        seq=2 * i + 1,
        ref=run.ref,
        pid=10_000 + i,
        start_us=run.sched_us + 1_500,
        run_user="cron",
        uid=1000,
        gid=1000,
    )


def _finished(run: PlannedRun, i: int, start_unsent: bool) -> RunFinished:
    failed = i % FAIL_EVERY == 0
    return RunFinished(
        seq=2 * i + 2,
        ref=run.ref,
        status=statuses.FAILED if failed else statuses.SUCCESS,
        end_us=run.sched_us + 250_000,
        start_us=run.sched_us + 1_500,
        pid=10_000 + i,
        code=1 if failed else 0,
        output=OUTPUT,
        output_bytes=len(OUTPUT),
        run_user="cron",
        uid=1000,
        gid=1000,
        start_unsent=start_unsent,
    )


def make_workload(n: int, with_starts: bool) -> Workload:
    runs = [
        plan_run(i % RULES + 1, T0 + (i // RULES) * S, i % RULES % AGENTS + 1) for i in range(n)
    ]
    reports: list[tuple[int, Message]] = []
    final_rows: list[dict[str, Any]] = []
    for first in range(0, n, RULES):  # each second's runs start, then end, within the second
        block = range(first, min(first + RULES, n))
        if with_starts:
            reports += [(runs[i].aid, _started(runs[i], i)) for i in block]
        ends = [(runs[i].aid, _finished(runs[i], i, not with_starts)) for i in block]
        reports += ends
        final_rows += [
            planned_row(runs[i], 1, T0) | finished_row(msg, aid, T0)
            for i, (aid, msg) in zip(block, ends, strict=True)
        ]
    return Workload(runs, reports, final_rows)


async def _timed(steps: Sequence[Callable[[], Awaitable[object]]]) -> tuple[float, float]:
    """Await each step in turn: total seconds, and the slowest step's."""
    total = worst = 0.0
    for step in steps:
        t0 = time.perf_counter()
        await step()
        took = time.perf_counter() - t0
        total, worst = total + took, max(worst, took)
    return total, worst


async def stage_planned(
    db: str, engine: AsyncEngine, lease: store.Lease, runs: list[PlannedRun]
) -> Result:
    chunks = [runs[i : i + PLAN_CHUNK] for i in range(0, len(runs), PLAN_CHUNK)]
    steps = [
        partial(store.insert_planned, engine, lease, c, c[-1].sched_us, now_us()) for c in chunks
    ]
    total, worst = await _timed(steps)
    how = f"store.insert_planned, {PLAN_CHUNK:,} runs/txn"
    return Result(db, "planned", how, len(runs), total, worst_s=worst)


async def stage_dispatched(db: str, engine: AsyncEngine, runs: list[PlannedRun]) -> Result:
    planned = frozenset({statuses.PLANNED})
    ticks = [[r.runid for r in runs[i : i + RULES]] for i in range(0, len(runs), RULES)]
    steps = [
        partial(store.set_run_status, engine, ids, statuses.DISPATCHED, now_us(), only_from=planned)
        for ids in ticks
    ]
    total, worst = await _timed(steps)
    how = f"store.set_run_status, {RULES:,}/call, {_IN_CHUNK}/txn"
    return Result(db, "dispatched", how, len(runs), total, worst_s=worst)


async def stage_reports(db: str, engine: AsyncEngine, work: Workload) -> list[Result]:
    metrics = CenterMetrics()
    intake = Intake(engine, metrics)
    for aid, message in work.reports:
        intake.add(aid, message)
    flushes = -(-len(work.reports) // REPORT_BATCH)
    total, worst = await _timed([intake.flush_reports] * flushes)
    if len(intake.reports):
        raise RuntimeError(f"{len(intake.reports)} reports left unwritten")
    sample = {"kind": "reports"}
    db_s = metrics.registry.get_sample_value("unitedcron_store_write_seconds_sum", sample)
    n, sent = len(work.runs), len(work.reports)
    return [
        Result(
            db,
            "reports",
            f"Intake.flush_reports, {REPORT_BATCH:,} reports/txn",
            n,
            total,
            sent,
            worst,
        ),
        Result(db, "  of which", "store.record_reports (database share)", n, db_s or 0.0, sent),
    ]


async def status_counts(engine: AsyncEngine) -> dict[str, int]:
    query = select(task_process.c.status, func.count()).group_by(task_process.c.status)
    async with engine.connect() as conn:
        return {str(s): int(c) for s, c in (await conn.execute(query)).all()}


async def center_stages(db: str, url: str, work: Workload) -> list[Result]:
    """The three stages through the center's code, on a fresh schema; checks the end state."""
    await upgrade_database(url)
    engine = create_engine(url)
    try:
        lease = await store.acquire_lease(engine, "bench", now_us(), 3600 * S)
        if lease is None:
            raise RuntimeError("could not take the leader lease of a fresh database")
        results = [
            await stage_planned(db, engine, lease, work.runs),
            await stage_dispatched(db, engine, work.runs),
            *await stage_reports(db, engine, work),
        ]
        counts = await status_counts(engine)
    finally:
        await engine.dispose()
    final = sum(c for s, c in counts.items() if s in statuses.FINAL)
    shown = ", ".join(f"{s} {c:,}" for s, c in sorted(counts.items()))
    flag = "" if final == len(work.runs) else f"   WRONG: {final:,} final, {len(work.runs):,} runs"
    print(f"{db}: task_process after the reports: {shown}{flag}")
    return results


def raw_stages(
    db: str, conn: Any, dialect: tuple[str, str, str], rows: list[dict[str, Any]]
) -> list[Result]:
    """The final rows through the bare DB-API driver: batched executemany, single-row commits."""
    mark, quote, clear = dialect
    cols = list(rows[0])
    names = ", ".join(f"{quote}{c}{quote}" for c in cols)
    sql = f"INSERT INTO task_process ({names}) VALUES ({', '.join([mark] * len(cols))})"
    params = [tuple(r[c] for c in cols) for r in rows]
    cur = conn.cursor()
    results = []
    for how, size in (
        (f"executemany, {REPORT_BATCH:,} rows/txn", REPORT_BATCH),
        ("single-row commits", 1),
    ):
        todo = params if size > 1 else params[:SINGLE_ROWS]
        cur.execute(clear)
        conn.commit()
        total = worst = 0.0
        for i in range(0, len(todo), size):
            t0 = time.perf_counter()
            cur.executemany(sql, todo[i : i + size])
            conn.commit()
            took = time.perf_counter() - t0
            total, worst = total + took, max(worst, took)
        results.append(Result(db, "raw", how, len(todo), total, worst_s=worst))
    cur.close()
    return results


def run_sqlite(work: Workload) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="uc-bench-writes-") as tmp:
        path = Path(tmp) / "unitedcron.db"
        results = uvloop.run(center_stages("sqlite", f"sqlite+aiosqlite:///{path}", work))
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL is the file's, set by the center
            results += raw_stages(
                "sqlite", conn, ("?", '"', "DELETE FROM task_process"), work.final_rows
            )
        finally:
            conn.close()
    return results


def _server_conn(server: URL, database: str | None = None) -> Any:
    return pymysql.connect(
        host=server.host or "127.0.0.1",
        port=server.port or 3306,
        user=server.username or "root",
        password=server.password or "",
        database=database,
        charset="utf8mb4",
        connect_timeout=5,
        autocommit=database is None,
        # As the center's engine: READ COMMITTED (no gap locks).
        init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    )


def mysql_probe(server: URL) -> str | None:
    """The server's version and durability setting; None (said why) if unreachable."""
    try:
        with _server_conn(server) as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION(), @@innodb_flush_log_at_trx_commit, @@log_bin")
            ver, flush, binlog = cur.fetchone()
    except pymysql.err.MySQLError as exc:
        print(f"mariadb: unreachable at {safe_url(server)} ({exc}); measuring SQLite only")
        return None
    return f"{ver}, innodb_flush_log_at_trx_commit={flush}, log_bin={binlog}"


def run_mysql(server: URL, work: Workload) -> list[Result]:
    name = f"uc_bench_writes_{secrets.token_hex(4)}"
    with _server_conn(server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        results = uvloop.run(center_stages("mariadb", url, work))
        with _server_conn(server, name) as conn:
            results += raw_stages(
                "mariadb", conn, ("%s", "`", "TRUNCATE TABLE task_process"), work.final_rows
            )
        return results
    finally:
        with _server_conn(server) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def print_setup(n: int, mariadb: str | None, sqlite_only: bool, with_starts: bool) -> None:
    libs = ", ".join(
        f"{p} {version(p)}" for p in ("sqlalchemy", "aiosqlite", "aiomysql", "pymysql")
    )
    print(
        f"result writes: N={n:,} runs ({RULES:,} rules a second on {AGENTS} agents, "
        f"1 in {FAIL_EVERY} failing, {len(OUTPUT)}-byte result), "
        + ("2 reports per run" if with_starts else "1 report per run (the finish alone)")
    )
    print(
        f"batches: plan {PLAN_CHUNK:,} runs/txn, dispatch {_IN_CHUNK}/txn, "
        f"reports {REPORT_BATCH:,}/txn, raw {REPORT_BATCH:,} rows/txn, single rows {SINGLE_ROWS:,}"
    )
    print(f"python {sys.version.split()[0]} (uvloop), {os.cpu_count()} cores, {libs}")
    print(f"sqlite {sqlite3.sqlite_version}, temp file, WAL, synchronous=NORMAL")
    if sqlite_only:
        print("mariadb: skipped (--sqlite-only)")
    elif mariadb is not None:
        print(f"mariadb {mariadb}")


def _row(r: Result, raw: float | None) -> str:
    rate = r.rows / r.seconds if r.seconds else float("nan")
    reports = f"{r.reports / r.seconds:10,.0f}" if r.reports and r.seconds else f"{'-':>10}"
    ratio = f"{rate / raw:6.2f}x" if raw else f"{'-':>7}"
    worst = f"{1000 * r.worst_s:8.1f}" if r.worst_s else f"{'-':>8}"
    return (
        f"{r.db:<8} {r.stage:<10} {r.how:<46} {r.rows:>8,} {r.seconds:7.2f} {rate:9,.0f}"
        f" {reports} {ratio} {worst}"
    )


def print_table(results: list[Result]) -> None:
    print(
        f"\n{'database':<8} {'stage':<10} {'how':<46} {'rows':>8} {'s':>7} {'rows/s':>9}"
        f" {'reports/s':>10} {'vs raw':>7} {'worst ms':>8}"
    )
    for db in dict.fromkeys(r.db for r in results):
        mine = [r for r in results if r.db == db]
        raw = next((r.rows / r.seconds for r in mine if r.how.startswith("executemany")), None)
        life = [r for r in mine if r.stage in CENTER_STAGES]
        whole = Result(
            db,
            "all three",
            "a run's whole life: planned+dispatched+reports",
            life[0].rows,
            sum(r.seconds for r in life),
        )
        for r in [*mine, whole]:
            print(_row(r, raw))
    print("worst ms: the slowest transaction (a call, for dispatched; a flush, for reports)")


def main() -> None:
    args = sys.argv[1:]
    sqlite_only = "--sqlite-only" in args
    numbers = [a for a in args if not a.startswith("--")]
    n = int(numbers[0]) if numbers else 100_000
    server = make_url(SERVER).set(database=None)
    mariadb = None if sqlite_only else mysql_probe(server)
    with_starts = "--with-starts" in args
    print_setup(n, mariadb, sqlite_only, with_starts)
    work = make_workload(n, with_starts)
    if "--gc-scans-workload" not in args:
        # The workload (N runs' messages and rows, millions of objects a center never holds at
        # once) is the bench's own: kept out of the garbage collector's full scans, which
        # otherwise cost more than the writes (in every column alike).
        gc.collect()
        gc.freeze()
    with open(os.devnull, "w") as devnull:
        configure_logging("info", "json", stream=devnull)  # the center's log lines, rendered
        results = run_sqlite(work)
        if mariadb is not None:
            results += run_mysql(server, work)
    print_table(results)


if __name__ == "__main__":
    main()
