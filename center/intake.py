"""What agents and peers tell the center, buffered between ticks and written in batches."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.metrics import CenterMetrics
from center.reports import ReportBatch, ReportBuffer, log_outcomes, now_us
from protocol.messages import DaemonStatus, Message

log = structlog.get_logger("center.intake")
AfterWrite = Callable[[ReportBatch], Awaitable[None]]
REPORT_BATCH = 5_000  # reports per write transaction: short, so the lease can interleave
EVENT_EVERY_S = 60.0  # at most one security event per address per minute: no audit flood


class Intake:
    """Run reports, daemon states and security events, until `flush` writes them."""

    def __init__(self, engine: AsyncEngine, metrics: CenterMetrics, center_name: str) -> None:
        self._engine = engine
        self._metrics = metrics
        self._center_name = center_name
        self.reports = ReportBuffer()
        self._daemon_states: dict[tuple[int, int], tuple[int, DaemonStatus]] = {}
        self._events: list[dict[str, Any]] = []
        self._refused_at: dict[str, float] = {}

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

    def handshake_refused(self, peer_ip: str, reason: str) -> None:
        self._metrics.handshakes_refused.inc()
        mono = time.monotonic()
        if mono - self._refused_at.get(peer_ip, -EVENT_EVERY_S) < EVENT_EVERY_S:
            return
        if len(self._refused_at) > 10_000:
            self._refused_at.clear()
        self._refused_at[peer_ip] = mono
        self.security_event("handshake.refused", peer_ip, reason)

    def security_event(self, action: str, client: str, reason: str) -> None:
        """An audit_log row, written with the next flush (callers throttle)."""
        self._events.append(
            store.security_event(action, client, reason, center=self._center_name, at_us=now_us())
        )

    async def flush_side(self) -> None:
        """Security events and daemon states: state, not history; no acknowledgement."""
        events, self._events = self._events, []
        await store.record_security_events(self._engine, events)
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
