"""Fleet services in the admin: a service's placement with each instance's state, an agent's
drain (confirmed when it would leave a service without an agent), the dashboard's shortfalls."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from admin.actor import Actor
from admin.errors import Conflict, NotFound
from admin.permissions import Action
from admin.queries import Row, fleet, rules
from admin.services import audited
from admin.services.agents import _visible as visible_agent
from protocol.clock import now_us


def instance_states(rows: list[Row]) -> list[dict[str, Any]]:
    """Pure: each instance's state: `unplaced` (no agent), `crash_looping` (its agent says so),
    `running` (its agent runs at least as many of the rule as are placed there), `starting`."""
    placed: dict[int, int] = {}
    for row in rows:
        if row["aid"]:
            placed[row["aid"]] = placed.get(row["aid"], 0) + 1
    out = []
    for row in rows:
        if not row["aid"]:
            state = "unplaced"
        elif row["crash_looping"]:
            state = "crash_looping"
        elif (row["running"] or 0) >= placed[row["aid"]]:
            state = "running"
        else:
            state = "starting"
        out.append(
            {
                "instance": row["instance"],
                "aid": row["aid"],
                "agent": row["agent"] or "",
                "state": state,
                "reason": row["reason"],
                "since_us": row["since_us"],
            }
        )
    return out


async def placement(engine: AsyncEngine, actor: Actor, task_id: int) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rule = await rules.rule_by_id(conn, task_id)
        if rule is None or rule["status"] == -1 or not actor.can(Action.VIEW, rule["gid"]):
            raise NotFound("no such rule")
        return instance_states(await fleet.placement(conn, task_id))


async def drain_agent(
    engine: AsyncEngine, actor: Actor, aid: int, *, confirm: bool
) -> dict[str, Any]:
    """Start draining: no new work; its instances move, then it is disabled. When a service
    would be left with no agent, only with `confirm` (409 naming them otherwise)."""
    now = now_us()
    async with engine.begin() as conn:
        before = await visible_agent(conn, actor, aid, Action.EDIT)
        if before["status"] not in (1, 2):
            raise Conflict("only an enabled agent can be drained")
        orphaned = await fleet.orphaned_by_drain(conn, aid, before["gid"])
        if orphaned and not confirm:
            names = ", ".join(f"{r['name']} (rule {r['id']})" for r in orphaned)
            raise Conflict(f"drain leaves these services unplaced: {names}; confirm to go on")
        await fleet.start_drain(conn, aid, now)
        target = ("agent", aid, before["gid"])
        await audited(conn, actor, now, "agent.drain", target, before=before, after={"drain": 1})
    return {"aid": aid, "drain": 1, "unplaced": [r["id"] for r in orphaned]}


async def agent_placements(engine: AsyncEngine, aid: int) -> list[Row]:
    async with engine.connect() as conn:
        return await fleet.placed_on(conn, aid)


async def shortfalls(engine: AsyncEngine, actor: Actor) -> list[Row]:
    async with engine.connect() as conn:
        return await fleet.short_services(conn, actor.scope)
