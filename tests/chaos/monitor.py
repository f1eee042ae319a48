"""Samples the leader lease and the agents' status every 100 ms, keeping each change's time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from center.tables import agents, leader_lease
from tests.chaos.procs import now_us

QUERY_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class LeaseSample:
    at_us: int
    holder: str
    epoch: int
    expires_us: int


@dataclass
class Monitor:
    """What the database said, and when it first said it (changes only)."""

    engine: AsyncEngine
    every_s: float = 0.1
    leases: list[LeaseSample] = field(default_factory=list)
    statuses: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    errors: int = 0
    lease_now: LeaseSample | None = None  # the latest sample, changed or not
    _task: asyncio.Task[None] | None = None
    _sampled: asyncio.Condition = field(default_factory=asyncio.Condition)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chaos-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(QUERY_TIMEOUT_S):
                    await self.sample()
            except (DBAPIError, OSError, TimeoutError):
                self.errors += 1
            async with self._sampled:
                self._sampled.notify_all()
            await asyncio.sleep(self.every_s)

    async def sample(self) -> None:
        async with self.engine.connect() as conn:
            lease = (await conn.execute(select(leader_lease))).mappings().first()
            rows = (await conn.execute(select(agents.c.name, agents.c.status))).all()
        at = now_us()
        if lease is not None:
            got = LeaseSample(at, lease["holder"], lease["epoch"], lease["expires_us"])
            self.lease_now = got
            last = self.leases[-1] if self.leases else None
            if last is None or (last.holder, last.epoch) != (got.holder, got.epoch):
                self.leases.append(got)
        for name, status in rows:
            seen = self.statuses.setdefault(name, [])
            if not seen or seen[-1][1] != status:
                seen.append((at, int(status)))

    # ------------------------------------------------------------ questions

    def leader(self) -> LeaseSample | None:
        """The lease as last sampled (its holder may have died since)."""
        return self.lease_now

    def status(self, agent: str) -> int | None:
        seen = self.statuses.get(agent)
        return seen[-1][1] if seen else None

    def first_lease_after(self, after_us: int, not_holder: str) -> LeaseSample | None:
        """The first lease change after `after_us` to a holder other than `not_holder`."""
        return next(
            (s for s in self.leases if s.at_us >= after_us and s.holder != not_holder), None
        )

    def first_status_after(self, agent: str, after_us: int, status: int) -> int | None:
        """When `agent` was first seen with `status` after `after_us`."""
        seen = self.statuses.get(agent, [])
        return next((at for at, st in seen if at >= after_us and st == status), None)

    async def wait(self, check: Callable[[], bool], timeout_s: float) -> None:
        """Return once `check()` holds on the samples (asked after each one); TimeoutError
        after `timeout_s`."""
        async with asyncio.timeout(timeout_s), self._sampled:
            await self._sampled.wait_for(check)
