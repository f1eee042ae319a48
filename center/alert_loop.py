"""The leader's alert loop: read what happened, decide with throttling, queue, then send."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from center.alert_calendars import CalendarCheck
from center.alerts.model import (
    AGENT_OFFLINE,
    CRASH_LOOPING,
    DID_NOT_START,
    FAILED,
    PENDING,
    RUN_FAILED,
    RUN_TIMEOUT,
    SENT,
    AlertState,
    Channel,
    Finding,
    StateKey,
    evaluate,
)
from center.alerts.senders import Destination, SendError, SmtpSettings, TargetRefused, deliver
from center.config import CenterConfig
from center.errors import NotLeader
from center.metrics import CenterMetrics
from center.store import Lease
from center.store import alert_checks as checks
from center.store import alerts as outbox
from protocol.clock import now_us

# What the center's step runner handles itself (a database outage, a lost lease).
RETRIED = (NotLeader, DBAPIError, OSError)
log = structlog.get_logger("center.alerts")
# Runs are read up to this far behind now, so that a report written with an earlier
# `updated_us` but committed a little later is not skipped by the cursor.
SCAN_LAG_US = 2_000_000
SEND_BATCH = 50
SEND_CONCURRENCY = 8
MAX_ATTEMPTS = 10
RETRY_BASE_S, RETRY_MAX_S = 10, 900


class _Leading(Protocol):
    @property
    def lease(self) -> Lease: ...


def smtp_settings(config: CenterConfig) -> SmtpSettings:
    return SmtpSettings(
        host=config.center_smtp_host,
        port=config.center_smtp_port,
        sender=config.center_smtp_from,
        user=config.center_smtp_user,
        password=config.center_smtp_password,
        starttls=config.center_smtp_starttls,
    )


class AlertLoop:
    """One step per `center_alerts_poll_s` on the leader: evaluate, then deliver what is due."""

    def __init__(
        self,
        engine: AsyncEngine,
        config: CenterConfig,
        leader: Callable[[], _Leading | None] = lambda: None,
        metrics: CenterMetrics | None = None,
    ) -> None:
        self.engine, self.config, self._leader = engine, config, leader
        self.smtp = smtp_settings(config)
        self.allowed = config.alert_networks
        self.metrics = metrics
        self.calendars = CalendarCheck()

    async def step(self) -> None:
        leader = self._leader()
        if leader is None:
            return  # alerts come from the leader only: one sender, one memory
        try:
            await self.evaluate(now_us(), leader.lease)
            await self.deliver_due(now_us())
        except RETRIED:
            raise  # the center's loop logs it, counts it and retries with backoff
        except Exception:
            # A bug here must not end alerting for the life of the process: log, go on.
            log.exception("alerts.step_failed")

    async def evaluate(self, now: int, lease: Lease | None = None) -> int:
        """Read, decide and queue; returns how many notifications were queued."""
        until = now - SCAN_LAG_US
        async with self.engine.connect() as conn:
            if lease is not None:
                await outbox.check_lease(conn, lease)
            channels = await outbox.load_channels(conn)
            cursor = await outbox.read_cursor(conn, outbox.RUNS_CURSOR)
            states = await outbox.load_states(conn, [c.id for c in channels])
            after = until if cursor is None else min(cursor, until)
            findings = await _collect(conn, channels, states, (after, until), now)
            findings += await self.calendars.findings(conn, channels, now)
        changed, notes = evaluate(channels, states, findings, now)
        async with self.engine.begin() as conn:
            if lease is not None:
                await outbox.check_lease(conn, lease)
            await outbox.save_states(conn, changed, now)
            await outbox.queue_notes(conn, notes, now)
            await outbox.write_cursor(conn, outbox.RUNS_CURSOR, max(until, cursor or 0), now)
        for note in notes:
            log.info(
                "alert.queued",
                channel_id=note.channel.id,
                alert=note.finding.event,
                subject=note.finding.subject,
                kind=note.kind,
                suppressed=note.suppressed,
            )
        return len(notes)

    async def deliver_due(self, now: int) -> int:
        """Send the notifications that are due; returns how many went out."""
        async with self.engine.connect() as conn:
            rows = await outbox.due_notifications(conn, now, SEND_BATCH)
        if not rows:
            return 0
        gate = asyncio.Semaphore(SEND_CONCURRENCY)

        async def one(row: dict[str, Any]) -> bool:
            async with gate:
                return await self._send(row)

        results = await asyncio.gather(*(one(r) for r in rows))
        return sum(results)

    async def _send(self, row: dict[str, Any]) -> bool:
        """One notification: whatever goes wrong with it (a bad address stored before the
        checks, a sender's bug) is recorded on it and retried with backoff; never raised into
        the batch, where it would hold up every other group's alerts."""
        attempts = row["attempts"] + 1
        try:
            data = json.loads(row["payload"]) | {"id": row["id"]}
            language = row["language"] or self.config.center_alert_language
            to = Destination(
                row["channel_kind"], row["target"], row["secret"], row["mentions"], language
            )
            timeout_s = self.config.center_alert_send_timeout_s
            await deliver(to, data, self.smtp, timeout_s, self.allowed)
        except TargetRefused as exc:
            values = _retry_values(attempts, str(exc))
            self._refused(row, str(exc))
        except Exception as exc:
            reason = str(exc) if isinstance(exc, SendError) else f"{type(exc).__name__}: {exc}"
            values = _retry_values(attempts, reason)
            log.warning(
                "alert.send_failed",
                notification_id=row["id"],
                channel_id=row["channel_id"],
                attempt=attempts,
                reason=reason[:300],
                gave_up=values["status"] == FAILED,
            )
        else:
            values = {"status": SENT, "attempts": attempts, "sent_us": now_us(), "error": ""}
            log.info(
                "alert.sent",
                notification_id=row["id"],
                channel_id=row["channel_id"],
                alert=row["event"],
                kind=row["kind"],
            )
        async with self.engine.begin() as conn:
            await outbox.record_attempt(conn, row["id"], values)
        return bool(values["status"] == SENT)

    def _refused(self, row: dict[str, Any], reason: str) -> None:
        """A target outside the public addresses and UNITEDCRON_ALERT_ALLOWED_NETWORKS."""
        log.warning(
            "alert.target_refused",
            notification_id=row["id"],
            channel_id=row["channel_id"],
            reason=reason[:300],
        )
        if self.metrics is not None:
            self.metrics.alert_targets_refused.inc()


def _retry_values(attempts: int, error: str) -> dict[str, Any]:
    if attempts >= MAX_ATTEMPTS:
        return {"status": FAILED, "attempts": attempts, "error": error[:500]}
    delay_s = min(RETRY_BASE_S * 2 ** (attempts - 1), RETRY_MAX_S)
    return {
        "status": PENDING,
        "attempts": attempts,
        "error": error[:500],
        "next_try_us": now_us() + delay_s * 1_000_000,
    }


async def _collect(
    conn: AsyncConnection,
    channels: list[Channel],
    states: dict[StateKey, AlertState],
    window: tuple[int, int],
    now: int,
) -> list[Finding]:
    """Run only the checks some channel listens to."""
    wanted = frozenset().union(*(c.events for c in channels)) if channels else frozenset()
    findings: list[Finding] = []
    if wanted & {RUN_FAILED, RUN_TIMEOUT}:
        findings += await checks.finished_runs(conn, *window, checks.open_run_rules(states))
    if CRASH_LOOPING in wanted:
        findings += await checks.daemon_findings(conn)
    if AGENT_OFFLINE in wanted:
        findings += await checks.agent_findings(conn)
    for channel in channels:
        if DID_NOT_START in channel.events:
            findings += await checks.did_not_start(conn, channel, now)
    return findings
