"""Statements compiled once per dialect and run with plain tuples through the driver's executemany.

SQLAlchemy's `conn.execute(stmt, [dict, ...])` processes every row's parameters in Python
(about a microsecond a column); on the hot write paths (reports, rollups) that cost more than
the database. A `Prepared` is the same Core statement compiled once: its SQL text and the
order of its parameters, run with `exec_driver_sql` on tuples, which hands them to the
driver untouched (pymysql/aiomysql still turns an INSERT … VALUES into multi-row statements).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, cast

from pymysql.constants import SERVER_STATUS
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from center.store.db import is_mysql

_CACHE: dict[tuple[str, str], Prepared] = {}
# INSERT … VALUES (%s, …) [ON DUPLICATE …]: its prefix, one row's placeholders, its postfix.
_INSERT_VALUES = re.compile(r"(\s*INSERT\b.+\bVALUES\s*)(\((?:%s,\s*)*%s\))(.*)\Z", re.S | re.I)
# Characters per rendered statement: at most 1 MB even if every one took 4 bytes, under any
# server's max_allowed_packet (16 MB by default in MariaDB since 10.2, 64 MB in MySQL 8).
_STATEMENT_CHARS = 250_000


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
        """Execute once per tuple (nothing when there are none). A MySQL INSERT is sent as
        multi-row statements whose values this module renders (see `_render_rows`)."""
        if not params:
            return
        insert = _INSERT_VALUES.match(self.sql) if is_mysql(conn) else None
        if insert is None:
            await conn.exec_driver_sql(self.sql, list(params))
            return
        prefix, postfix = insert.group(1), insert.group(3)
        driver = (await conn.get_raw_connection()).driver_connection
        if driver is None:
            raise RuntimeError("the connection has no driver connection")
        room = _STATEMENT_CHARS - len(prefix) - len(postfix)
        pieces = _render_rows(params, _escaper(driver), room)
        # Rendered literals go through the driver's `query % ()`: a % must be doubled.
        await _pipelined(conn, ((prefix + v + postfix).replace("%", "%%") for v in pieces))


async def _pipelined(conn: AsyncConnection, statements: Iterator[str]) -> None:
    """Run statements one after the other, each next one rendered (a pull on `statements`)
    while the server executes the one before: the client's and the server's work overlap."""
    pending: asyncio.Future[Any] | None = None
    try:
        for sql in statements:
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(conn.exec_driver_sql(sql))
            await asyncio.sleep(0)  # let it send the statement before rendering the next
        if pending is not None:
            await pending
    except BaseException:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.wait([pending])
        raise


def _render_rows(
    params: Sequence[tuple[Any, ...]], escape: Callable[[str], str], max_chars: int
) -> Iterable[str]:
    """Rows as SQL literals "(1,'a',NULL),(…)", in pieces of at most about `max_chars`.

    The driver's own executemany does the same with a generic escape of each value (a type
    lookup and two calls per value: a third of the write's time on a report batch); here an
    int is `str(int)` and a string is escaped by the connection's `escape_string`, which
    follows the server's NO_BACKSLASH_ESCAPES mode exactly as the driver's does."""

    def other(value: Any) -> str:  # NULL, and subclasses: StrEnum statuses, IntEnum, bool
        if value is None:
            return "NULL"
        if isinstance(value, int):
            return str(int(value))
        if isinstance(value, str):
            return "'" + escape(str.__str__(value)) + "'"
        raise TypeError(f"no SQL literal for a value of type {type(value).__name__}")

    part: list[str] = []
    size = 0
    for row in params:
        # Inline tests, not a call per value: this loop is most of the rendering's time.
        literals = [
            str(v)
            if type(v) is int
            else "'" + escape(v) + "'"
            if type(v) is str
            else "NULL"
            if v is None
            else other(v)
            for v in row
        ]
        text = "(" + ",".join(literals) + ")"
        if part and size + len(text) > max_chars:
            yield ",".join(part)
            part, size = [], 0
        part.append(text)
        size += len(text) + 1
    if part:
        yield ",".join(part)


def _backslashed(value: str) -> str:
    """pymysql's escape_string (\\0 \\ \\n \\r \\032 " ' backslashed), by str.replace: its
    str.translate on a list takes 2 µs for a short result; these seven passes in C, 0.5 µs.
    The backslash first: the others add backslashes that must stay single."""
    return (
        value.replace("\\", "\\\\")
        .replace("\0", "\\0")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\032", "\\Z")
        .replace('"', '\\"')
        .replace("'", "\\'")
    )


def _escaper(driver: Any) -> Callable[[str], str]:
    """The connection's `escape_string`, or the same done faster: a server in
    NO_BACKSLASH_ESCAPES mode takes the connection's own (quotes doubled)."""
    if driver.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES:
        return cast(Callable[[str], str], driver.escape_string)
    return _backslashed


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


_IN_LISTS: dict[tuple[str, str], tuple[str, str, str]] = {}


def with_in_list(dialect: Dialect, key: str, build: Callable[[], Any], name: str) -> InList:
    """The query `build()` makes, with one expanding IN parameter `name`, as the driver's
    own SQL (compiled once per dialect and `key`): SQLAlchemy would compile the IN list of
    every call and process every row it returns."""
    cache_key = (dialect.name, key)
    found = _IN_LISTS.get(cache_key)
    if found is None:
        text = str(build().compile(dialect=dialect))
        before, after = text.split(f"__[POSTCOMPILE_{name}]")
        found = _IN_LISTS[cache_key] = (
            before,
            "?" if dialect.paramstyle == "qmark" else "%s",
            after,
        )
    return InList(*found)


@dataclass(frozen=True, slots=True)
class InList:
    """A query's SQL before its IN list, one parameter's mark, and its SQL after."""

    before: str
    mark: str
    after: str

    async def all(
        self, conn: AsyncConnection, params: Sequence[Any], values: Sequence[Any]
    ) -> list[Any]:
        """Its rows, for the positional `params` before the list and the list's `values`."""
        sql = self.before + ",".join([self.mark] * len(values)) + self.after
        if conn.dialect.name == "sqlite":
            # aiosqlite's own execute-and-fetch: one trip to its thread, and plain tuples,
            # not a cursor's two trips and a Row made per row by SQLAlchemy.
            driver = (await conn.get_raw_connection()).driver_connection
            if driver is None:
                raise RuntimeError("the connection has no driver connection")
            return list(await driver.execute_fetchall(sql, (*params, *values)))
        result = await conn.exec_driver_sql(sql, (*params, *values))
        return list(result.fetchall())
