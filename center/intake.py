"""What agents report to the leader, buffered between ticks and written in batches."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.metrics import CenterMetrics
from center.report_buffer import ReportBatch, ReportBuffer, log_outcomes
from center.store.db import is_mysql
from protocol.clock import now_us
from protocol.messages import DaemonStatus, Message, RunFinished

log = structlog.get_logger("center.intake")
AfterWrite = Callable[[ReportBatch], Awaitable[None]]
REPORT_BATCH = 5_000  # reports per write transaction: short, so the lease can interleave
# Outcome lines said between two looks at the write in flight: about a millisecond of work,
# so that the write's next statement waits at most that long.
SAY_SLICE = 100


class Intake:
    """Run reports and daemon states, until a flush writes them."""

    def __init__(self, engine: AsyncEngine, metrics: CenterMetrics) -> None:
        self._engine = engine
        self._metrics = metrics
        self.reports = ReportBuffer()
        self._daemon_states: dict[tuple[int, int], tuple[int, DaemonStatus]] = {}
        # Outcomes of stored batches whose lines are not out yet (see `_write`).
        self._unsaid: deque[tuple[int, RunFinished]] = deque()
        # SQLite works in a thread of this process and needs the GIL for every row it binds:
        # rendering lines meanwhile would make each row wait for it. MySQL works elsewhere.
        self._say_while_writing = is_mysql(engine)

    def add(self, aid: int, message: Message) -> None:
        if not isinstance(message, DaemonStatus):
            self.reports.add(aid, message)
            return
        key = (message.task_id, aid)
        old = self._daemon_states.get(key)
        if message.crash_looping and not (old and old[1].crash_looping):
            log.warning(
                "daemon.crash_looping",
                task_id=message.task_id,
                aid=aid,
                last_exit=message.last_exit,
            )
        self._daemon_states[key] = (aid, message)

    async def flush_states(self) -> None:
        """Daemon states: state, not history; no acknowledgement."""
        states, self._daemon_states = list(self._daemon_states.values()), {}
        await store.record_daemon_states(self._engine, [_state_row(s, aid) for aid, s in states])

    async def flush_reports(self, then: AfterWrite | None = None) -> ReportBatch | None:
        """Write the run reports in one transaction, then let `then` act on them (retries,
        dependents). On any failure they are kept for the next try, unacknowledged: both
        steps are idempotent, and nothing is lost between them."""
        if not len(self.reports):
            return None
        items = self.reports.drain(REPORT_BATCH)
        batch = self.reports.build(items, now_us())
        try:
            await self._write(batch)
            if then is not None:
                await then(batch)
        except BaseException:
            self.reports.putback(items)
            self.say_outcomes()
            raise
        self.reports.written += len(items)
        self._metrics.observe_reports(batch)
        self._unsaid.extend(batch.finished_msgs)
        if not (self._say_while_writing and len(self.reports)):  # else during the next write
            self.say_outcomes()
        return batch

    def say_outcomes(self, limit: int | None = None) -> None:
        """Log the outcome lines of stored batches not said yet (the oldest `limit` of them)."""
        n = len(self._unsaid) if limit is None else min(limit, len(self._unsaid))
        log_outcomes([self._unsaid.popleft() for _ in range(n)])

    async def _write(self, batch: ReportBatch) -> None:
        """Write `batch`; meanwhile say the outcomes of the batches stored before it, in
        slices: the lines are rendered on this core while the database works on the other."""
        write = asyncio.ensure_future(self._record(batch))
        try:
            while self._say_while_writing and self._unsaid and not write.done():
                self.say_outcomes(SAY_SLICE)
                await asyncio.sleep(0)  # let the write send its next statement
            await write
        except BaseException:
            if not write.done():
                write.cancel()
                await asyncio.wait([write])
            raise

    async def _record(self, batch: ReportBatch) -> None:
        with self._metrics.store_write_s.labels(kind="reports").time():
            await store.record_reports(self._engine, batch.started, batch.finished, batch.chunks)


def _state_row(status: DaemonStatus, aid: int) -> dict[str, object]:
    return {
        "task_id": status.task_id,
        "aid": aid,
        "wanted": status.wanted,
        "running": status.running,
        "crash_looping": int(status.crash_looping),
        "last_exit": status.last_exit[:500],
        "updated_us": now_us(),
    }
