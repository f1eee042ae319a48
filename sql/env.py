"""Alembic environment: UnitedCron's migrations, run through the async engine.

`center.store.db.upgrade_database()` hands in an open connection (`config.attributes`); the
`alembic` command line (`alembic -c sql/alembic.ini -x url=... upgrade head`) makes its own.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import Connection

from center.store.db import COMPARE_OPTIONS, create_engine, normalize_url
from center.tables import metadata

config = context.config


def _configure(**kwargs: Any) -> None:
    sqlite = kwargs.pop("sqlite")
    context.configure(
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=bool(sqlite),
        **COMPARE_OPTIONS,
        **kwargs,
    )


def _cli_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("alembic: give the database as -x url=sqlite+aiosqlite:///./unitedcron.db")
    return url


def run_offline() -> None:
    """`alembic upgrade --sql`: print the SQL instead of running it."""
    url = normalize_url(_cli_url())
    _configure(url=url, literal_binds=True, sqlite=url.get_backend_name() == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    _configure(connection=connection, sqlite=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def run_cli_online() -> None:
    engine = create_engine(_cli_url(), pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(run_on)
            await conn.commit()
    finally:
        await engine.dispose()


def main() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        run_on(given)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)  # the CLI only: a service keeps its own logging
    if context.is_offline_mode():
        run_offline()
    else:
        asyncio.run(run_cli_online())


main()
