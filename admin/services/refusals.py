"""A refused login, recorded three ways: one log line, one audit row, one counter increment."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from admin import throttle
from admin.config import AdminConfig
from admin.metrics import AdminMetrics
from admin.queries import audit
from admin.queries import throttle as throttle_rows
from protocol.clock import now_us

log = structlog.get_logger("admin")


@dataclass(frozen=True, slots=True)
class Gate:
    """What a login step needs besides the credentials: the store, settings, metrics, client."""

    engine: AsyncEngine
    cfg: AdminConfig
    metrics: AdminMetrics
    client: str


async def refuse(
    gate: Gate,
    method: str,
    reason: str,
    name: str,
    text: str,
    *,
    states: dict[str, throttle.ThrottleState] | None = None,
) -> None:
    """Record a refused login: `method` (local, ldap, oidc, totp) and `reason` (a fixed code)
    label the counter and the log line; `text` is the reason people read in the audit log;
    `states` are the login-throttle states after this failure, saved with the audit row."""
    log.warning(
        "admin.login_refused",
        method=method,
        reason=reason,
        user=name,
        client=gate.client,
        detail=text,
    )
    gate.metrics.login_refused.labels(method=method, reason=reason).inc()
    async with gate.engine.begin() as conn:
        for key, state in (states or {}).items():
            await throttle_rows.save_state(conn, key, state)
        await audit.record(
            conn,
            at_us=now_us(),
            user_id=0,
            username=name[:64],
            action="login.failed",
            object_type="user",
            object_id=name[:64],
            after={"reason": text, "method": method, "code": reason},
            client=gate.client,
        )
