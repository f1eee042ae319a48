"""What the leader hands its parts (recovery, commands): one term's engine, lease, pool, queue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.agent_pool import AgentPool
from center.dispatch_marks import DispatchMarks
from center.dispatcher import DispatchQueue
from center.routing import AgentInfo
from center.rulebook import RuleBook
from center.runs import PlannedRun


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderContext:
    """Fixed from the lease won to the step-down; `agents` reads the latest agents poll."""

    engine: AsyncEngine
    lease: store.Lease
    rulebook: RuleBook
    agents: Callable[[], Mapping[int, AgentInfo]]
    pool: AgentPool
    queue: DispatchQueue
    wake: asyncio.Event
    grace_us: int
    lost_after_us: int  # in-flight runs of an agent silent this long are lost
    # Runs sent whose `dispatched` status is not written yet (see DispatchMarks).
    marks: DispatchMarks = field(default_factory=DispatchMarks)

    @property
    def epoch(self) -> int:
        return self.lease.epoch

    def agent_name(self, aid: int) -> str:
        info = self.agents().get(aid)
        return info.name if info is not None else str(aid)

    def enqueue(self, runs: list[PlannedRun], at_us: int | None = None) -> None:
        """Queue runs for dispatch (at their time, or at `at_us`) and wake the dispatcher."""
        if runs:
            self.queue.add(runs, at_us=at_us)
            self.wake.set()

    async def add_runs(self, runs: list[PlannedRun], now_us: int) -> None:
        """Runs decided outside the schedule (manual, retries): written fenced, then queued."""
        if runs:
            await store.insert_planned(self.engine, self.lease, runs, 0, now_us)
            self.enqueue(runs)
