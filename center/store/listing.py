"""Runs as operators list them (with their rule's and agent's names), and the demo's seed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center.rule_versions import Author
from center.store._util import new_id
from center.store.versions import record_version
from center.tables import agents, cron_group, crontab, crontab_agent, task_process
from protocol import statuses

DEMO = Author(0, "demo", "unitedcron demo")


def _named_runs() -> Select[Any]:
    return (
        select(task_process, crontab.c.name.label("rule_name"), agents.c.name.label("agent_name"))
        .outerjoin(crontab, crontab.c.id == task_process.c.task_id)
        .outerjoin(agents, agents.c.id == task_process.c.aid)
    )


async def newest_runs(engine: AsyncEngine, limit: int, task_id: int | None) -> list[dict[str, Any]]:
    """The newest `limit` runs (of one rule, or all), oldest first."""
    query = _named_runs().order_by(task_process.c.sched_us.desc(), task_process.c.id.desc())
    if task_id is not None:
        query = query.where(task_process.c.task_id == task_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.limit(limit))).mappings().all()
    return [dict(r) for r in reversed(rows)]


async def finished_since(engine: AsyncEngine, after_us: int) -> list[dict[str, Any]]:
    """Runs that ended after `after_us` (by their last update), in that order."""
    query = _named_runs().where(
        task_process.c.updated_us > after_us, task_process.c.status.in_(statuses.FINAL)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(task_process.c.updated_us))).mappings().all()
    return [dict(r) for r in rows]


async def seed_demo(
    engine: AsyncEngine,
    agent_name: str,
    run_user: str,
    rules: Iterable[Mapping[str, Any]],
    now_us: int,
) -> None:
    """A `demo` group, the agent approved in it, and `rules` on it if there are no rules yet."""
    stamps = {"create_time": now_us, "update_time": now_us}
    async with engine.begin() as conn:
        gid = (
            await conn.execute(select(cron_group.c.id).where(cron_group.c.name == "demo"))
        ).scalar()
        if gid is None:
            values = {"name": "demo", "description": "created by unitedcron demo", **stamps}
            gid = new_id(await conn.execute(insert(cron_group).values(**values)))
        aid = (await conn.execute(select(agents.c.id).where(agents.c.name == agent_name))).scalar()
        if aid is None:
            values = {"name": agent_name, "gid": gid, "ip": "127.0.0.1", "port": 0, **stamps}
            aid = new_id(await conn.execute(insert(agents).values(status=1, **values)))
        await conn.execute(update(agents).where(agents.c.id == aid).values(status=1))
        if (await conn.execute(select(func.count()).select_from(crontab))).scalar():
            return
        for rule in rules:
            row = {"gid": gid, "run_user": run_user, **stamps, **rule}
            task_id = new_id(await conn.execute(insert(crontab).values(**row)))
            await conn.execute(insert(crontab_agent).values(task_id=task_id, aid=aid))
            await record_version(conn, task_id, DEMO, now_us)
