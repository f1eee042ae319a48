"""Retention on the leader: old runs and their output deleted in small batches, short locks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from center.config import CenterConfig
from center.errors import NotLeader
from center.store import retention as retention_store
from center.store import rollups
from protocol.clock import now_us

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


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    batch: int = 500
    pause_s: float = 0.1
    default_days: int = 30
    output_keep_s: float = 3600.0
    rollup_keep_days: int = 400

    @classmethod
    def of(cls, config: CenterConfig) -> RetentionSettings:
        return cls(
            batch=config.center_retention_batch,
            pause_s=config.center_retention_pause_s,
            default_days=config.center_retention_default_days,
            output_keep_s=config.center_output_keep_s,
            rollup_keep_days=config.center_rollup_keep_days,
        )


@dataclass(slots=True)
class Deleted:
    runs: int = 0
    chunks: int = 0
    batches: int = 0
    rollups: int = 0


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
        # Rollups are not the runs' to take along: hours older than their own keep only.
        done.rollups = await rollups.delete_old(
            self.engine, now - self.settings.rollup_keep_days * _DAY_US
        )
        if done.runs or done.chunks or done.rollups:
            log.info(
                "retention.deleted",
                runs=done.runs,
                output_chunks=done.chunks,
                rollups=done.rollups,
                batches=done.batches,
            )
        return done

    async def _cutoffs(self) -> list[tuple[int | None, int]]:
        """(group id, days) per group, and (None, default) for runs of rules without one."""
        groups = await retention_store.group_retention_days(self.engine)
        cutoffs: list[tuple[int | None, int]] = [(gid, max(days, 1)) for gid, days in groups]
        return [*cutoffs, (None, self.settings.default_days)]

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
        return await retention_store.delete_old_runs(self.engine, gid, cutoff, self.settings.batch)

    async def _old_chunks(self, before_us: int) -> tuple[int, int]:
        """One batch: output chunks of runs that finished before `before_us` (or are gone)."""
        return 0, await retention_store.delete_old_chunks(
            self.engine, before_us, self.settings.batch
        )
