"""Schema migrations on SQLite and MySQL/MariaDB: upgrade, idempotence, drift, concurrency."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text

from center.errors import StoreUnavailable
from center.store.db import (
    create_engine,
    current_revision,
    head_revision,
    schema_differences,
    upgrade_database,
)
from center.tables import MYSQL_OPTIONS, cron_group, metadata

TIMEOUT_S = 60.0


async def test_upgrade_from_empty_reaches_head(empty_db_url: str) -> None:
    """An empty database has no revision, and one upgrade creates every table at head."""
    async with asyncio.timeout(TIMEOUT_S):
        assert await current_revision(empty_db_url) is None
        assert await upgrade_database(empty_db_url) == head_revision()
        assert await current_revision(empty_db_url) == head_revision()
        engine = create_engine(empty_db_url)
        try:
            async with engine.connect() as conn:
                for table in metadata.sorted_tables:
                    assert await conn.scalar(select(func.count()).select_from(table)) == 0
        finally:
            await engine.dispose()


async def test_second_upgrade_is_a_noop(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Upgrading a database already at head runs no migration and keeps its rows."""
    engine = create_engine(db_url)
    try:
        async with asyncio.timeout(TIMEOUT_S):
            async with engine.begin() as conn:
                await conn.execute(insert(cron_group).values(name="ops"))
            with caplog.at_level(logging.INFO, logger="alembic"):
                assert await upgrade_database(db_url) == head_revision()
            async with engine.connect() as conn:
                assert (await conn.scalars(select(cron_group.c.name))).all() == ["ops"]
    finally:
        await engine.dispose()
    assert not [r for r in caplog.records if "Running upgrade" in r.getMessage()]


async def test_migrations_match_tables(db_url: str) -> None:
    """After an upgrade, autogenerate finds no difference between the database and tables.py."""
    async with asyncio.timeout(TIMEOUT_S):
        assert await schema_differences(db_url) == []


async def test_drift_is_detected(db_url: str) -> None:
    """A column the migrations know but center/tables.py does not shows up as a difference."""
    engine = create_engine(db_url)
    try:
        async with asyncio.timeout(TIMEOUT_S):
            async with engine.begin() as conn:
                await conn.execute(text("ALTER TABLE crontab ADD COLUMN stray INTEGER"))
            diffs = await schema_differences(db_url)
    finally:
        await engine.dispose()
    assert [d[0] for d in diffs] == ["remove_column"]
    assert diffs[0][3].name == "stray"


async def test_concurrent_upgrades_take_turns(empty_db_url: str) -> None:
    """Two upgrades of one empty database at once both succeed and create the schema once."""
    async with asyncio.timeout(TIMEOUT_S):
        results = await asyncio.gather(
            upgrade_database(empty_db_url), upgrade_database(empty_db_url)
        )
        assert results == [head_revision()] * 2
        assert await schema_differences(empty_db_url) == []


async def test_relative_sqlite_path_is_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default-style URL sqlite+aiosqlite:///./unitedcron.db upgrades a file in the cwd."""
    monkeypatch.chdir(tmp_path)
    async with asyncio.timeout(TIMEOUT_S):
        assert await upgrade_database("sqlite+aiosqlite:///./unitedcron.db") == head_revision()
    assert (tmp_path / "unitedcron.db").is_file()


async def test_revision_of_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    """Asking the revision of a SQLite file that does not exist answers None and leaves no file."""
    path = tmp_path / "absent.db"
    async with asyncio.timeout(TIMEOUT_S):
        assert await current_revision(f"sqlite+aiosqlite:///{path}") is None
    assert not path.exists()


async def test_unreachable_server_names_url_without_password() -> None:
    """An upgrade against a server that refuses connections names the URL, password masked."""
    url = "mysql+aiomysql://uc:s3cr3t-pw@127.0.0.1:1/united_cron"
    with pytest.raises(StoreUnavailable) as caught:
        async with asyncio.timeout(TIMEOUT_S):
            await upgrade_database(url)
    message = str(caught.value)
    assert "mysql+aiomysql://uc:***@127.0.0.1:1/united_cron" in message
    assert "s3cr3t-pw" not in message


async def test_sqlite_in_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    """A SQLite file in a directory that does not exist gives StoreUnavailable naming it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    with pytest.raises(StoreUnavailable, match=r"no such directory: .*/no/such"):
        async with asyncio.timeout(TIMEOUT_S):
            await upgrade_database(url)


def test_every_table_declares_mysql_options() -> None:
    """Every table in center/tables.py carries MYSQL_OPTIONS, which autogenerate cannot check."""
    for table in metadata.sorted_tables:
        assert {k: table.kwargs.get(k) for k in MYSQL_OPTIONS} == MYSQL_OPTIONS, table.name


@pytest.mark.mysql
async def test_mysql_tables_are_innodb_utf8mb4(mysql_url: str) -> None:
    """On MySQL/MariaDB every migrated table is InnoDB with the utf8mb4 collation."""
    async with asyncio.timeout(TIMEOUT_S):
        await upgrade_database(mysql_url)
        engine = create_engine(mysql_url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text(
                        "SELECT table_name, engine, table_collation FROM information_schema.tables"
                        " WHERE table_schema = DATABASE() AND table_name != 'alembic_version'"
                    )
                )
                found = {name: (eng, coll) for name, eng, coll in rows}
        finally:
            await engine.dispose()
    assert found == {t: ("InnoDB", "utf8mb4_unicode_ci") for t in metadata.tables}
