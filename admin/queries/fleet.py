"""Fleet services as the admin reads them: each instance's placement and state, what is placed
on an agent, and the services an agent's drain would leave without an agent."""

from __future__ import annotations

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row
from center.tables import agents, crontab, crontab_agent, daemon_placement, daemon_state

_SERVICE = and_(crontab.c.is_daemon == 1, crontab.c.routing != "listed", crontab.c.status == 1)


async def placement(conn: AsyncConnection, task_id: int) -> list[Row]:
    """Each instance of the service: its agent (name), reason, since, and its agent's daemon
    figures for the rule (running, crash_looping)."""
    query = (
        select(
            daemon_placement,
            agents.c.name.label("agent"),
            daemon_state.c.running,
            daemon_state.c.crash_looping,
        )
        .outerjoin(agents, agents.c.id == daemon_placement.c.aid)
        .outerjoin(
            daemon_state,
            and_(
                daemon_state.c.task_id == daemon_placement.c.task_id,
                daemon_state.c.aid == daemon_placement.c.aid,
            ),
        )
        .where(daemon_placement.c.task_id == task_id)
        .order_by(daemon_placement.c.instance)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def placed_on(conn: AsyncConnection, aid: int) -> list[Row]:
    """(rule id, rule name, instance, since) of every instance placed on the agent."""
    query = (
        select(
            daemon_placement.c.task_id,
            crontab.c.name,
            daemon_placement.c.instance,
            daemon_placement.c.since_us,
        )
        .join(crontab, crontab.c.id == daemon_placement.c.task_id)
        .where(daemon_placement.c.aid == aid)
        .order_by(daemon_placement.c.task_id, daemon_placement.c.instance)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def orphaned_by_drain(conn: AsyncConnection, aid: int, gid: int | None) -> list[Row]:
    """Services placed on the agent that no other agent could take: approved, not draining,
    in the rule's group or listed for it."""
    others = select(agents.c.id).where(
        agents.c.id != aid, agents.c.status.in_((1, 2)), agents.c.drain == 0
    )
    listed_other = (
        select(crontab_agent.c.task_id)
        .where(crontab_agent.c.aid.in_(others))
        .where(crontab_agent.c.task_id == crontab.c.id)
        .exists()
    )
    grouped_other = (
        select(agents.c.id).where(agents.c.id.in_(others), agents.c.gid == crontab.c.gid).exists()
    )
    on_it = select(daemon_placement.c.task_id).where(daemon_placement.c.aid == aid)
    query = (
        select(crontab.c.id, crontab.c.name)
        .where(_SERVICE, crontab.c.id.in_(on_it), ~or_(listed_other, grouped_other))
        .order_by(crontab.c.id)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def start_drain(conn: AsyncConnection, aid: int, now_us: int) -> None:
    await conn.execute(update(agents).where(agents.c.id == aid).values(drain=1, update_time=now_us))


async def short_services(conn: AsyncConnection, gids: frozenset[int] | None) -> list[Row]:
    """Services with fewer placed instances than process_num, with a reason when unplaced."""
    query = (
        select(
            crontab.c.id,
            crontab.c.name,
            crontab.c.process_num,
            daemon_placement.c.aid,
            daemon_placement.c.reason,
        )
        .join(daemon_placement, daemon_placement.c.task_id == crontab.c.id)
        .where(_SERVICE)
        .order_by(crontab.c.id, daemon_placement.c.instance)
    )
    if gids is not None:
        query = query.where(crontab.c.gid.in_(gids))
    out: dict[int, Row] = {}
    for r in (await conn.execute(query)).mappings():
        row = out.setdefault(
            r["id"], {"id": r["id"], "name": r["name"], "wanted": r["process_num"], "placed": 0}
        )
        row["placed"] += 1 if r["aid"] else 0
        if not r["aid"] and not row.get("reason"):
            row["reason"] = r["reason"]
    return [r for r in out.values() if r["placed"] < r["wanted"]]
