"""Statements compiled once per dialect and run with plain tuples through the driver's executemany.

SQLAlchemy's `conn.execute(stmt, [dict, ...])` processes every row's parameters in Python
(about a microsecond a column); on the hot write paths (reports, rollups) that cost more than
the database. A `Prepared` is the same Core statement compiled once: its SQL text and the
order of its parameters, run with `exec_driver_sql` on tuples, which hands them to the
driver untouched (pymysql/aiomysql still turns an INSERT … VALUES into multi-row statements).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

_CACHE: dict[tuple[str, str], Prepared] = {}


@dataclass(frozen=True, slots=True)
class Prepared:
    """A compiled statement: its SQL, and the names of its parameters in order."""

    sql: str
    names: tuple[str, ...]

    def tuples(self, rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """Rows (dicts holding at least `names`) as parameter tuples."""
        get = itemgetter(*self.names)
        if len(self.names) == 1:
            return [(get(row),) for row in rows]
        return [get(row) for row in rows]

    def tuples_with(self, name: str, pairs: Iterable[tuple[Any, Mapping[str, Any]]]) -> list[Any]:
        """(value, row) pairs as parameter tuples, the parameter `name` taken from the value
        and every other one from the row."""
        at = self.names.index(name)
        get = itemgetter(*(n for n in self.names if n != name))
        if len(self.names) == 2:
            return [(v, get(row)) if at == 0 else (get(row), v) for v, row in pairs]
        out = []
        for value, row in pairs:
            values = get(row)
            out.append((*values[:at], value, *values[at:]))
        return out

    async def run(self, conn: AsyncConnection, params: Sequence[tuple[Any, ...]]) -> None:
        """Execute once per tuple (nothing when there are none)."""
        if params:
            await conn.exec_driver_sql(self.sql, list(params))


def prepare(
    dialect: Dialect,
    key: str,
    build: Callable[[], Any],
    column_keys: Sequence[str] | None = None,
) -> Prepared:
    """The statement `build()` makes, compiled for `dialect` the first time `key` is asked for.
    `column_keys`: the columns an INSERT's VALUES or an UPDATE's SET take parameters for."""
    cache_key = (dialect.name, key)
    found = _CACHE.get(cache_key)
    if found is not None:
        return found
    keys = list(column_keys) if column_keys is not None else None
    compiled = build().compile(dialect=dialect, column_keys=keys)
    if not dialect.positional or compiled.positiontup is None:
        raise RuntimeError(f"{key}: expected a positional driver, got {dialect.paramstyle}")
    prepared = Prepared(compiled.string, tuple(compiled.positiontup))
    _CACHE[cache_key] = prepared
    return prepared
