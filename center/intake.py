"""What agents report to the leader, buffered between ticks and written in batches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.metrics import CenterMetrics
from center.report_buffer import ReportBatch, ReportBuffer, log_outcomes
from protocol.clock import now_us
from protocol.messages import DaemonStatus, Message

log = structlog.get_logger("center.intake")
AfterWrite = Callable[[ReportBatch], Awaitable[None]]
REPORT_BATCH = 5_000  # reports per write transaction: short, so the lease can interleave


class Intake:
    """Run reports and daemon states, until a flush writes them."""

    def __init__(self, engine: AsyncEngine, metrics: CenterMetrics) -> None:
        self._engine = engine
        self._metrics = metrics
        self.reports = ReportBuffer()
        self._daemon_states: dict[tuple[int, int], tuple[int, DaemonStatus]] = {}

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
            with self._metrics.store_write_s.labels(kind="reports").time():
                await store.record_reports(
                    self._engine, batch.started, batch.finished, batch.chunks
                )
            if then is not None:
                await then(batch)
        except BaseException:
            self.reports.putback(items)
            raise
        self.reports.written += len(items)
        log_outcomes(batch)
        self._metrics.observe_reports(batch)
        return batch


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
