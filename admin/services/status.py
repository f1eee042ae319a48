"""The fleet at a glance, for `unitedcron ctl status` and scripts: agents, rules, runs, leader."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from admin.actor import Actor
from admin.permissions import sees_pending_agents
from admin.queries import dashboard, status
from protocol.clock import now_us

HOUR_US = 3_600_000_000


async def fleet_status(engine: AsyncEngine, actor: Actor) -> dict[str, Any]:
    """Counts within the groups the actor sees; the leader for everyone (a center's name)."""
    now = now_us()
    scope = actor.scope
    async with engine.connect() as conn:
        agents = await dashboard.agent_counts(conn, scope)
        pending = (
            await dashboard.pending_count(conn)
            if sees_pending_agents(actor.user, actor.grants)
            else 0
        )
        rules = await status.rule_counts(conn, scope)
        lease = await status.leader(conn)
        return {
            "agents": {
                "up": agents.get(1, 0),
                "down": agents.get(2, 0),
                "disabled": agents.get(0, 0),
                "pending": pending,
            },
            "rules": {
                "enabled": rules.get(1, 0),
                "paused": rules.get(0, 0),
                "in_error": await status.rules_in_error(conn, scope),
            },
            "runs_last_hour": await status.runs_since(conn, scope, now - HOUR_US),
            "leader": _leader(lease, now),
            "now_us": now,
        }


def _leader(lease: dict[str, Any] | None, now: int) -> dict[str, Any]:
    if lease is None or not lease["holder"]:
        return {"holder": "", "epoch": 0, "expires_us": 0, "alive": False}
    return lease | {"alive": lease["expires_us"] > now}
