"""Database plumbing: async engines for SQLite and MySQL/MariaDB, and schema migrations.

No business queries live here; `center/store.py` and the admin's queries build on it.

* `create_engine(url)` tunes each backend once, so nobody else sets pragmas or modes.
* `insert_ignore(table)` is the batched, idempotent insert of runs (a duplicate key is skipped).
* `upgrade_database(url)` brings the schema to the newest Alembic revision.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Insert, Table, event, insert, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

import sql
from center.errors import StoreUnavailable
from center.tables import metadata

URL_SETTING = "UNITEDCRON_DB_URL"
SQLITE_BUSY_TIMEOUT_MS = 5000
MYSQL_CONNECT_TIMEOUT_S = 10
# How long an upgrade waits for another process's upgrade to finish (MySQL).
MIGRATION_LOCK_WAIT_S = 120
# Concurrent upgraders (a center and an admin starting together) take turns on MySQL,
# with a named lock per database (GET_LOCK names are server-wide; at most 64 characters).
_MYSQL_MIGRATION_LOCK = "unitedcron.migrate.{database}"

# What operators may write → the async driver we run it with. `mariadb` maps to the mysql
# dialect so that dialect-specific SQL (prefix_with(..., dialect="mysql")) applies to both.
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "mysql": "mysql+aiomysql",
    "mysql+aiomysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
    "mariadb+aiomysql": "mysql+aiomysql",
}
_MYSQL_SESSION = (
    # Strict mode: a value too long for its column is an error, never silently truncated.
    "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION',"
    # Times are BIGINT microseconds; UTC only matters for ad-hoc SQL such as FROM_UNIXTIME.
    " time_zone = '+00:00'"
)


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL and pick the async driver; ValueError names the setting if bad."""
    accepted = "sqlite+aiosqlite:///PATH or mysql+aiomysql://USER:PASS@HOST:PORT/DB"
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"{URL_SETTING}: not a database URL ({exc}); use {accepted}") from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(f"{URL_SETTING}: unsupported scheme {parsed.drivername!r}; use {accepted}")
    return parsed.set(drivername=driver)


def safe_url(url: str | URL) -> str:
    """The URL as it may appear in logs and errors: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def create_engine(url: str | URL, *, pool_size: int = 5) -> AsyncEngine:
    """An AsyncEngine for a SQLite or MySQL/MariaDB URL, tuned for UnitedCron."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, pool_size)
    return _mysql_engine(parsed, pool_size)


def _sqlite_engine(url: URL, pool_size: int) -> AsyncEngine:
    kwargs: dict[str, Any] = {}
    if url.database not in (None, "", ":memory:"):
        # In-memory databases get SQLAlchemy's StaticPool, which takes no size.
        kwargs["pool_size"] = pool_size
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers never block the writer. NORMAL: in WAL mode a process crash loses
        # nothing and a power cut at worst the last commits, never the file's integrity.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _sqlite_use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = OFF")  # the schema declares none
    finally:
        cursor.close()


def _sqlite_use_wal(cursor: Any) -> None:
    """Switch the file to WAL (a lasting property of the file, so this is a one-time change)."""
    try:
        cursor.execute("PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError as exc:
        # Two connections converting a brand-new file at the same instant: the loser gets
        # "locked" at once (SQLite skips the busy timeout to avoid a deadlock). The winner's
        # switch is the same as ours, so this connection goes on in WAL all the same.
        if "locked" not in str(exc):
            raise


def _mysql_engine(url: URL, pool_size: int) -> AsyncEngine:
    if "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    return create_async_engine(
        url,
        pool_size=pool_size,
        pool_pre_ping=True,
        pool_recycle=3600,
        # READ COMMITTED takes no gap locks, so concurrent INSERT IGNORE batches don't deadlock.
        isolation_level="READ COMMITTED",
        connect_args={
            "connect_timeout": MYSQL_CONNECT_TIMEOUT_S,
            "init_command": _MYSQL_SESSION,
        },
    )


def is_mysql(
    engine_or_url: AsyncEngine | Engine | AsyncConnection | Connection | URL | str,
) -> bool:
    """Whether this engine, connection or URL talks to MySQL/MariaDB (else SQLite)."""
    if isinstance(engine_or_url, str | URL):
        return normalize_url(engine_or_url).get_backend_name() == "mysql"
    return engine_or_url.dialect.name in ("mysql", "mariadb")


@asynccontextmanager
async def read_snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose reads all see the database at one instant: several tables that one
    transaction writes together (a workflow, its nodes, its edges) read as that transaction
    left them. Plain reads each see their own instant: READ COMMITTED on MySQL, and SQLite
    outside a transaction (its driver opens none for a SELECT)."""
    async with engine.connect() as conn:
        if is_mysql(conn):
            # The snapshot is taken at the first read and kept until the transaction ends.
            await conn.execution_options(isolation_level="REPEATABLE READ")  # on this connection
        else:
            await conn.exec_driver_sql("BEGIN")  # deferred: its snapshot is the first read's
        yield conn  # closing rolls back: nothing was written


def insert_ignore(table: Table) -> Insert:
    """INSERT that skips rows whose unique keys already exist, on SQLite and MySQL alike.

    On MySQL, IGNORE also turns other errors (a too-long string, a NULL in a NOT NULL
    column) into warnings and stores a clipped or default value: validate rows first.
    """
    return (
        insert(table)
        .prefix_with("OR IGNORE", dialect="sqlite")
        .prefix_with("IGNORE", dialect="mysql")
    )


def migrations_dir() -> Path:
    """The Alembic script directory (`sql/`), wherever the package is installed."""
    # __path__, not __file__: an editable install made before sql/__init__.py existed
    # imports `sql` as a namespace package, which has no __file__.
    return Path(next(iter(sql.__path__))).resolve()


def alembic_config() -> Config:
    """An Alembic Config built in code: no alembic.ini, no working-directory assumptions."""
    cfg = Config()
    # ConfigParser interpolates '%'; a path containing one must have it doubled.
    cfg.set_main_option("script_location", str(migrations_dir()).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    return cfg


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {migrations_dir()}")
    return head


def _compare_server_default(
    _context: MigrationContext,
    _inspected_column: Any,
    _metadata_column: Any,
    inspected_default: str | None,
    _metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Alembic cannot unquote an empty string default (it sees '' ≠ ""): settle that case.

    MySQL reflects it as '', and Alembic's SQLite reflection wraps it as ('').
    """
    if rendered_metadata_default == "":
        return inspected_default not in ("''", "('')")
    return None  # Alembic's own comparison


# How migrations compare the database with center.tables: sql/env.py and schema_differences().
COMPARE_OPTIONS: dict[str, Any] = {
    "compare_type": True,
    "compare_server_default": _compare_server_default,
}


async def upgrade_database(url: str | URL) -> str:
    """Create or migrate the schema to the newest revision and return it; a no-op if there."""
    async with _migration_connection(normalize_url(url), "schema upgrade") as conn:
        await conn.run_sync(_upgrade_sync)
        await conn.commit()
        revision = await conn.run_sync(_revision_sync)
    if revision is None:
        raise RuntimeError(f"schema upgrade of {safe_url(url)} left no revision recorded")
    return revision


async def current_revision(url: str | URL) -> str | None:
    """The schema revision the database is at; None for an empty (or absent) database."""
    parsed = normalize_url(url)
    if _sqlite_file_missing(parsed):
        return None  # don't create an empty file just to look into it
    async with _migration_connection(parsed, "schema revision check") as conn:
        return await conn.run_sync(_revision_sync)


async def schema_differences(url: str | URL) -> list[Any]:
    """What autogenerate would change to make the database match center.tables; [] if none.

    A non-empty answer after `upgrade_database` means a table changed without a migration.
    """
    async with _migration_connection(normalize_url(url), "schema comparison") as conn:
        return await conn.run_sync(_differences_sync)


def _sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL; None for in-memory and `file:` URI databases."""
    if url.get_backend_name() != "sqlite":
        return None
    db = url.database or ":memory:"
    return None if db == ":memory:" or db.startswith("file:") else Path(db)


def _sqlite_file_missing(url: URL) -> bool:
    path = _sqlite_path(url)
    return path is not None and not path.exists()


def _sqlite_folder(url: URL) -> Path | None:
    path = _sqlite_path(url)
    return None if path is None else path.absolute().parent


@asynccontextmanager
async def _migration_connection(url: URL, operation: str) -> AsyncIterator[AsyncConnection]:
    """One connection for a migration task; no answer from the server → StoreUnavailable.

    The connect is bounded (MySQL's connect timeout, SQLite's busy timeout); the migration
    itself is not: cutting a long ALTER short would leave MySQL's schema half changed.
    """
    where = f"{operation} of {safe_url(url)}"
    folder = _sqlite_folder(url)
    if folder is not None and not folder.is_dir():
        # Said plainly, instead of SQLite's "unable to open database file".
        raise StoreUnavailable(where, FileNotFoundError(f"no such directory: {folder}"))
    engine = create_engine(url, pool_size=1)
    try:
        try:
            conn = await engine.connect()
        except (DBAPIError, OSError) as exc:
            raise StoreUnavailable(where, _root_cause(exc)) from exc
        try:
            if is_mysql(conn):
                await _acquire_mysql_lock(conn, url.database or "")
            yield conn
        finally:
            await conn.close()  # also frees the MySQL named lock
    finally:
        await engine.dispose()


async def _acquire_mysql_lock(conn: AsyncConnection, database: str) -> None:
    name = _MYSQL_MIGRATION_LOCK.format(database=database)[:64]
    got = await conn.scalar(
        text("SELECT GET_LOCK(:name, :wait_s)"), {"name": name, "wait_s": MIGRATION_LOCK_WAIT_S}
    )
    await conn.commit()  # the lock belongs to the session; no need to hold a transaction open
    if got != 1:
        raise OSError(f"another process held the migration lock {name!r}")


def _root_cause(exc: BaseException) -> BaseException:
    """The driver's own error, without SQLAlchemy's wrapping and background link."""
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc


def _upgrade_sync(conn: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    if conn.dialect.name == "sqlite":
        # All or nothing, and one upgrader at a time: SQLite's DDL is transactional.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    command.upgrade(cfg, "head")


def _revision_sync(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _differences_sync(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts=COMPARE_OPTIONS)
    return list(compare_metadata(context, metadata))


async def schema_ready(url: str, process: str) -> int:
    """0 when the database answers and is at the newest revision; else one log line saying why
    (`<process>.database_unreachable` or `<process>.schema_outdated`) and the exit code, 1 or
    2. The one schema check of every process that needs the database."""
    log = structlog.get_logger(process)
    try:
        found = await current_revision(url)
    except Exception as exc:  # unreachable database: one clear line, no traceback
        log.error(f"{process}.database_unreachable", url=safe_url(url), reason=str(exc))
        return 1
    if found != head_revision():
        log.error(
            f"{process}.schema_outdated",
            url=safe_url(url),
            found=found,
            wanted=head_revision(),
            fix="run `unitedcron db upgrade`",
        )
        return 2
    return 0
