"""Fixtures every test may use: databases on SQLite and on a real MySQL/MariaDB server.

* `sqlite_url`, `mysql_url` — a fresh, empty database of that kind (no schema).
* `empty_db_url` — the same, once per backend (ids `sqlite`, `mysql`).
* `db_url` — `empty_db_url` upgraded to the newest schema revision.
* `engine` — an AsyncEngine (center.store.db.create_engine) on `db_url`, disposed afterwards.

The MySQL server is `UNITEDCRON_TEST_MYSQL` (default mysql+aiomysql://root@127.0.0.1:3306);
without one, MySQL tests are skipped — except under `CI=true`, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped]  # aiomysql's dependency; ships no types
import pytest
import sqlalchemy
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from center.store.db import create_engine, safe_url, upgrade_database

MYSQL_SERVER_ENV = "UNITEDCRON_TEST_MYSQL"
DEFAULT_MYSQL_SERVER = "mysql+aiomysql://root@127.0.0.1:3306"
MYSQL_CONNECT_TIMEOUT_S = 5
UPGRADE_TIMEOUT_S = 60.0
DISPOSE_TIMEOUT_S = 10.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that asks for `mysql_url` itself is a `mysql` test, like db_url's mysql case."""
    for item in items:
        if "mysql_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mysql)


def _server_connection(server: URL) -> Any:
    """A plain pymysql connection to the server: no engine, no event loop, nothing global."""
    return pymysql.connect(
        host=server.host or "127.0.0.1",
        port=server.port or 3306,
        user=server.username or "root",
        password=server.password or "",
        unix_socket=server.query.get("unix_socket"),
        connect_timeout=MYSQL_CONNECT_TIMEOUT_S,
        read_timeout=30,
        write_timeout=30,
        charset="utf8mb4",
        autocommit=True,
    )


@pytest.fixture(scope="session")
def mysql_server() -> URL:
    """The test MySQL/MariaDB server's URL (no database), checked once per session."""
    server = make_url(os.environ.get(MYSQL_SERVER_ENV, DEFAULT_MYSQL_SERVER)).set(database=None)
    try:
        _server_connection(server).close()
    except pymysql.err.MySQLError as exc:
        reason = f"no MySQL/MariaDB at {safe_url(server)} (set {MYSQL_SERVER_ENV}): {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return server


@pytest.fixture
def mysql_url(mysql_server: URL) -> Iterator[str]:
    """A fresh utf8mb4 database `uc_t_<random>` on the test server, dropped afterwards."""
    name = f"uc_t_{secrets.token_hex(6)}"
    with _server_connection(mysql_server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield mysql_server.set(database=name).render_as_string(hide_password=False)
    finally:
        with _server_connection(mysql_server) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file (not yet created) in the test's own temporary directory."""
    return f"sqlite+aiosqlite:///{tmp_path / 'unitedcron.db'}"


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def empty_db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database with no schema, once on SQLite and once on MySQL/MariaDB."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def db_url(empty_db_url: str) -> str:
    """A fresh database upgraded to the newest schema, once per backend."""
    async with asyncio.timeout(UPGRADE_TIMEOUT_S):
        await upgrade_database(empty_db_url)
    return empty_db_url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An AsyncEngine on `db_url`, disposed after the test."""
    eng = create_engine(db_url)
    try:
        yield eng
    finally:
        async with asyncio.timeout(DISPOSE_TIMEOUT_S):
            await eng.dispose()


@pytest.fixture
def other_writer(db_url: str) -> Iterator[Engine]:
    """A plain (sync) engine on `db_url`: another connection whose writes commit at once,
    for a test that writes while one of the center's loads runs (from a cursor hook)."""
    url = make_url(db_url)
    driver = {"sqlite": "sqlite", "mysql": "mysql+pymysql"}[url.get_backend_name()]
    other = sqlalchemy.create_engine(url.set(drivername=driver))
    try:
        yield other
    finally:
        other.dispose()
