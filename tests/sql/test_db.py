"""center.store.db plumbing: engines, URL handling and INSERT IGNORE on both backends."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from center.store.db import create_engine, insert_ignore, is_mysql
from center.tables import task_process

TIMEOUT_S = 30.0


def _run(runid: str, *, sched_us: int, aid: int = 1, attempt: int = 0) -> dict[str, object]:
    return {
        "task_id": 7,
        "runid": runid,
        "aid": aid,
        "status": "planned",
        "sched_us": sched_us,
        "attempt": attempt,
    }


async def test_insert_ignore_skips_duplicate_keys(engine: AsyncEngine) -> None:
    """A batch where some rows repeat task_process's unique keys lands the others, no error."""
    async with asyncio.timeout(TIMEOUT_S):
        async with engine.begin() as conn:
            await conn.execute(
                insert(task_process), [_run("r1", sched_us=1), _run("r2", sched_us=2)]
            )
        batch = [
            _run("r1", sched_us=100),  # same runid as an existing row
            _run("r3", sched_us=3),
            _run("r9", sched_us=2),  # same (task, time, agent, attempt, instance) as r2
            _run("r4", sched_us=2, attempt=1),  # a retry: a different attempt is a new run
            _run("r3", sched_us=300),  # repeats a runid earlier in the same batch
        ]
        async with engine.begin() as conn:
            await conn.execute(insert_ignore(task_process), batch)
        async with engine.connect() as conn:
            rows = (await conn.execute(select(task_process.c.runid, task_process.c.sched_us))).all()
    assert sorted(rows) == [("r1", 1), ("r2", 2), ("r3", 3), ("r4", 2)]


async def test_insert_ignore_single_row_reports_what_landed(engine: AsyncEngine) -> None:
    """A single INSERT IGNORE tells, by its rowcount, whether the row was new."""
    async with asyncio.timeout(TIMEOUT_S), engine.begin() as conn:
        first = await conn.execute(insert_ignore(task_process).values(**_run("a", sched_us=1)))
        again = await conn.execute(insert_ignore(task_process).values(**_run("a", sched_us=1)))
        count = await conn.scalar(select(func.count()).select_from(task_process))
    assert (first.rowcount, again.rowcount, count) == (1, 0, 1)


async def test_sqlite_connections_use_wal(sqlite_url: str) -> None:
    """Every SQLite connection runs in WAL mode, synchronous NORMAL, with a busy timeout."""
    engine = create_engine(sqlite_url)
    try:
        async with asyncio.timeout(TIMEOUT_S), engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 5000
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 0
    finally:
        await engine.dispose()


@pytest.mark.mysql
async def test_mysql_sessions_are_tuned(mysql_url: str) -> None:
    """MySQL sessions use utf8mb4, READ COMMITTED and strict mode."""
    engine = create_engine(mysql_url)
    try:
        async with asyncio.timeout(TIMEOUT_S), engine.connect() as conn:
            charset = await conn.scalar(select(func.charset("x")))
            isolation = await conn.get_isolation_level()
            sql_mode = (await conn.exec_driver_sql("SELECT @@SESSION.sql_mode")).scalar()
    finally:
        await engine.dispose()
    assert charset == "utf8mb4"
    assert isolation == "READ COMMITTED"
    assert "STRICT_TRANS_TABLES" in str(sql_mode)


@pytest.mark.parametrize(
    ("url", "mysql"),
    [
        ("sqlite+aiosqlite:///./unitedcron.db", False),
        ("sqlite:///./unitedcron.db", False),
        ("mysql+aiomysql://u:p@db:3306/united_cron", True),
        ("mysql://u:p@db/united_cron", True),
        ("mariadb://u:p@db/united_cron", True),
    ],
)
def test_is_mysql_from_url(url: str, mysql: bool) -> None:
    """is_mysql tells the backend from any accepted URL spelling."""
    assert is_mysql(url) is mysql


async def test_engines_use_the_async_drivers() -> None:
    """Plain sqlite:// and mysql:// URLs get the aiosqlite and aiomysql drivers."""
    lite = create_engine("sqlite:///./x.db")
    my = create_engine("mariadb://u:p@db/united_cron")
    try:
        assert lite.dialect.driver == "aiosqlite"
        assert (my.dialect.name, my.dialect.driver) == ("mysql", "aiomysql")
        assert is_mysql(my) and not is_mysql(lite)
    finally:
        await lite.dispose()
        await my.dispose()


@pytest.mark.parametrize(
    "url", ["postgresql+asyncpg://u@h/db", "oracle://h/db", "not a url", "sqlite+pysqlite:///x.db"]
)
def test_other_schemes_are_refused_naming_the_setting(url: str) -> None:
    """A URL of an unsupported kind is a ValueError naming UNITEDCRON_DB_URL and what works."""
    with pytest.raises(ValueError, match="UNITEDCRON_DB_URL") as caught:
        create_engine(url)
    assert "sqlite+aiosqlite" in str(caught.value)
    assert "mysql+aiomysql" in str(caught.value)
