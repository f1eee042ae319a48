"""Shared limits in: the groups' concurrency keys, and the runs that hold them in the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from center.store._util import _chunks
from center.tables import concurrency_key, task_process
from protocol import statuses

IN_FLIGHT = frozenset({statuses.DISPATCHED, statuses.RUNNING})


@dataclass(frozen=True, slots=True)
class ActiveRun:
    runid: str
    task_id: int
    aid: int
    instance: int


async def load_keys(engine: AsyncEngine) -> dict[tuple[int, str], int]:
    """(gid, key) -> limit, for every group."""
    query = select(concurrency_key.c.gid, concurrency_key.c.key, concurrency_key.c.limit)
    async with engine.connect() as conn:
        return {(gid, key): limit for gid, key, limit in await conn.execute(query)}


async def runs_holding(engine: AsyncEngine, task_ids: Sequence[int]) -> list[ActiveRun]:
    """The runs of these rules sent and not ended (on any agent): what a new leader counts."""
    cols = (task_process.c.runid, task_process.c.task_id, task_process.c.aid)
    out: list[ActiveRun] = []
    async with engine.connect() as conn:
        for chunk in _chunks(list(task_ids)):
            query = select(*cols, task_process.c.instance).where(
                task_process.c.task_id.in_(chunk), task_process.c.status.in_(IN_FLIGHT)
            )
            out += [ActiveRun(*row) for row in await conn.execute(query)]
    return out


async def runs_ended(engine: AsyncEngine, runids: Sequence[str]) -> list[str]:
    """Which of these runs the store knows as ended (or does not know at all)."""
    found: dict[str, str] = {}
    async with engine.connect() as conn:
        for chunk in _chunks(list(runids)):
            query = select(task_process.c.runid, task_process.c.status).where(
                task_process.c.runid.in_(chunk)
            )
            found.update((runid, status) for runid, status in await conn.execute(query))
    return [r for r in runids if found.get(r, statuses.LOST) in statuses.FINAL]
