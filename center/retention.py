"""Retention on the leader: old runs and their output deleted in small batches, short locks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import structlog
from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from center.config import CenterConfig
from center.errors import NotLeader
from center.tables import cron_group, crontab, task_output, task_process
from protocol import statuses

# What the center's step runner handles itself (a database outage, a lost lease).
RETRIED = (NotLeader, DBAPIError, OSError)
log = structlog.get_logger("center.retention")
_DAY_US = 86_400 * 1_000_000
# Each step deletes at most this many batches, so that a first run on a big, old table is
# spread over several steps instead of one long one.
MAX_BATCHES_PER_STEP = 200


class _Leading(Protocol):
    @property
    def epoch(self) -> int: ...


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    batch: int = 500
    pause_s: float = 0.1
    default_days: int = 30
    output_keep_s: float = 3600.0

    @classmethod
    def of(cls, config: CenterConfig) -> RetentionSettings:
        return cls(
            batch=config.center_retention_batch,
            pause_s=config.center_retention_pause_s,
            default_days=config.center_retention_default_days,
            output_keep_s=config.center_output_keep_s,
        )


@dataclass(slots=True)
class Deleted:
    runs: int = 0
    chunks: int = 0
    batches: int = 0


class Retention:
    """Deletes finished runs older than their group's `retention_days`, then live output
    chunks of runs finished more than `output_keep_s` ago (the result is in task_process)."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: RetentionSettings,
        leader: Callable[[], _Leading | None] = lambda: None,
    ) -> None:
        self.engine, self.settings, self._leader = engine, settings, leader

    async def step(self) -> None:
        if self._leader() is None:
            return  # one deleter: the leader
        try:
            await self.run_once(now_us())
        except RETRIED:
            raise  # the center's loop logs it, counts it and retries with backoff
        except Exception:
            # A bug here must not end retention for the life of the process: log, go on.
            log.exception("retention.step_failed")

    async def run_once(self, now: int) -> Deleted:
        done = Deleted()
        for gid, days in await self._cutoffs():
            await self._drain(done, partial(self._old_runs, gid, days, now))
        keep_us = int(self.settings.output_keep_s * 1e6)
        await self._drain(done, partial(self._old_chunks, now - keep_us))
        if done.runs or done.chunks:
            log.info(
                "retention.deleted", runs=done.runs, output_chunks=done.chunks, batches=done.batches
            )
        return done

    async def _cutoffs(self) -> list[tuple[int | None, int]]:
        """(group id, days) per group, and (None, default) for runs of rules without one."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(cron_group.c.id, cron_group.c.retention_days))).all()
        return [(int(gid), max(int(days), 1)) for gid, days in rows] + [
            (None, self.settings.default_days)
        ]

    async def _drain(self, done: Deleted, batch: Callable[[], Awaitable[tuple[int, int]]]) -> None:
        """Run one kind of batch until it deletes less than a full batch, pausing between."""
        while done.batches < MAX_BATCHES_PER_STEP:
            runs, chunks = await batch()
            done.runs, done.chunks, done.batches = (
                done.runs + runs,
                done.chunks + chunks,
                done.batches + 1,
            )
            if max(runs, chunks) < self.settings.batch:
                return
            await asyncio.sleep(self.settings.pause_s)  # let other writers in between batches

    async def _old_runs(self, gid: int | None, days: int, now: int) -> tuple[int, int]:
        """One batch: finished runs (and their chunks) of the group's rules older than `days`."""
        cutoff = now - days * _DAY_US
        query = (
            select(task_process.c.id, task_process.c.runid)
            .where(task_process.c.sched_us < cutoff)
            .where(task_process.c.status.in_(sorted(statuses.FINAL)))
            .limit(self.settings.batch)
        )
        if gid is not None:
            query = query.join(crontab, crontab.c.id == task_process.c.task_id).where(
                crontab.c.gid == gid
            )
        else:
            # Rules without a group, or with one that is gone, and runs of removed rules.
            grouped = select(crontab.c.id).where(crontab.c.gid.in_(select(cron_group.c.id)))
            query = query.where(task_process.c.task_id.not_in(grouped))
        async with self.engine.begin() as conn:
            rows = (await conn.execute(query)).all()
            if not rows:
                return 0, 0
            runids = [r.runid for r in rows]
            chunks = await conn.execute(delete(task_output).where(task_output.c.runid.in_(runids)))
            await conn.execute(
                delete(task_process).where(task_process.c.id.in_([r.id for r in rows]))
            )
        return len(rows), int(chunks.rowcount)

    async def _old_chunks(self, before_us: int) -> tuple[int, int]:
        """One batch: output chunks of runs that finished before `before_us` (or are gone)."""
        query = (
            select(task_output.c.id)
            .select_from(task_output)
            .outerjoin(task_process, task_process.c.runid == task_output.c.runid)
            .where(task_output.c.created_us < before_us)
            .where(
                task_process.c.id.is_(None)
                | (
                    task_process.c.status.in_(sorted(statuses.FINAL))
                    & (task_process.c.updated_us < before_us)
                )
            )
            .limit(self.settings.batch)
        )
        async with self.engine.begin() as conn:
            ids = [r.id for r in (await conn.execute(query)).all()]
            if ids:
                await conn.execute(delete(task_output).where(task_output.c.id.in_(ids)))
        return 0, len(ids)
