"""Commands from the admin, daemon states and security events."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from center.store.db import is_mysql
from center.tables import (
    audit_log,
    center_command,
    daemon_state,
    task_process,
)
from protocol import statuses
from protocol.vocabulary import CommandStatus


@dataclass(frozen=True, slots=True)
class Command:
    """A row of center_command: what an operator asked of the live system."""

    id: int
    kind: str
    task_id: int
    runid: str
    aid: int
    user_id: int
    created_us: int = 0
    args: Mapping[str, Any] = field(default_factory=dict)  # the JSON `args` column, decoded


@dataclass(frozen=True, slots=True)
class RunState:
    runid: str
    task_id: int
    aid: int
    status: str


PENDING_LIMIT = 100
# Built once: a statement made anew each time is also keyed anew for the compiled cache.
_PENDING = (
    select(center_command)
    .where(center_command.c.status == CommandStatus.PENDING)
    .order_by(center_command.c.id)
    .limit(PENDING_LIMIT)
)


async def pending_commands(engine: AsyncEngine) -> list[Command]:
    """The oldest PENDING_LIMIT pending commands."""
    query = _PENDING
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [
        Command(
            r["id"],
            r["kind"],
            r["task_id"],
            r["runid"],
            r["aid"],
            r["user_id"],
            r["created_us"],
            _args(r["args"]),
        )
        for r in rows
    ]


def _args(text: str) -> Mapping[str, Any]:
    """A command's args; anything but a JSON object reads as none (the command then fails on
    what it lacks, naming it)."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def finish_command(
    engine: AsyncEngine, command_id: int, status: str, result: str, now_us: int
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(center_command)
            .where(
                center_command.c.id == command_id, center_command.c.status == CommandStatus.PENDING
            )
            .values(status=status, result=result[:500], done_us=now_us)
        )


def _run_states(rows: Iterable[Any]) -> list[RunState]:
    return [RunState(r.runid, r.task_id, r.aid, r.status) for r in rows]


async def find_run(engine: AsyncEngine, runid: str) -> RunState | None:
    cols = (task_process.c.runid, task_process.c.task_id, task_process.c.aid, task_process.c.status)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(*cols).where(task_process.c.runid == runid))).all()
    found = _run_states(rows)
    return found[0] if found else None


async def active_runs(engine: AsyncEngine, task_id: int) -> list[RunState]:
    cols = (task_process.c.runid, task_process.c.task_id, task_process.c.aid, task_process.c.status)
    query = select(*cols).where(
        task_process.c.task_id == task_id, task_process.c.status.in_(statuses.ACTIVE)
    )
    async with engine.connect() as conn:
        return _run_states((await conn.execute(query)).all())


async def record_daemon_states(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    """Upsert what agents report of their daemon rules, keyed by (task_id, aid)."""
    if not rows:
        return
    cols = ("wanted", "running", "crash_looping", "last_exit", "updated_us")
    if is_mysql(engine):
        my = mysql_dialect.insert(daemon_state)
        stmt: Any = my.on_duplicate_key_update({c: my.inserted[c] for c in cols})
    else:
        lite = sqlite_dialect.insert(daemon_state)
        stmt = lite.on_conflict_do_update(
            index_elements=["task_id", "aid"], set_={c: lite.excluded[c] for c in cols}
        )
    async with engine.begin() as conn:
        await conn.execute(stmt, rows)


def security_event(
    action: str, client: str, reason: str, *, center: str, at_us: int
) -> dict[str, Any]:
    """An audit_log row for something refused at the center (no user: the peer is unknown)."""
    return {
        "at_us": at_us,
        "user_id": 0,
        "username": "",
        "action": action[:32],
        "object_type": "center",
        "object_id": center[:64],
        "gid": None,
        "before_json": "{}",
        "after_json": json.dumps({"reason": reason[:500]}),
        "client": client[:64],
    }


async def record_security_events(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    if rows:
        async with engine.begin() as conn:
            await conn.execute(insert(audit_log), rows)
