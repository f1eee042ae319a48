"""The admin's SQL, one module per kind of object; every function takes an open connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Table, false, true
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from center.store.db import is_mysql

Row = dict[str, Any]
MAX_LIMIT = 1000


def in_scope(column: Any, gids: frozenset[int] | None) -> ColumnElement[bool]:
    """`column IN gids`, or no condition at all for None (everything)."""
    if gids is None:
        return true()
    if not gids:
        return false()
    return column.in_(sorted(gids))  # type: ignore[no-any-return]


def clamp_limit(limit: int) -> int:
    return max(1, min(limit, MAX_LIMIT))


async def upsert(
    conn: AsyncConnection, table: Table, values: Mapping[str, Any], keys: tuple[str, ...]
) -> None:
    """Insert a row, or update the one with the same primary/unique key, on either backend."""
    changed = [name for name in values if name not in keys]
    stmt: Any
    if is_mysql(conn):
        stmt = mysql_dialect.insert(table).values(**values)
        stmt = stmt.on_duplicate_key_update({n: stmt.inserted[n] for n in changed})
    else:
        stmt = sqlite_dialect.insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={n: stmt.excluded[n] for n in changed}
        )
    await conn.execute(stmt)


def as_dict(row: Any) -> Row:
    return dict(row) if row is not None else {}
