"""A real center and real agents on 127.0.0.1 port 0, and rule rows written as an admin would."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.config import AgentConfig
from agent.service import AgentService
from center.config import CenterConfig
from center.service import CenterService
from center.tables import agents, cron_group, crontab, crontab_agent, task_process

SECRET = "integration-test-secret-0123456789"
T = TypeVar("T")


def now_us() -> int:
    return time.time_ns() // 1000


def center_config(db_url: str, **overrides: Any) -> CenterConfig:
    settings: dict[str, Any] = {
        "db_url": db_url,
        "secret": SECRET,
        "center_listen": "127.0.0.1:0",
        "center_name": "test-center",
        "center_agents_poll_s": 0.2,
        "center_rules_poll_s": 0.2,
        "center_lease_renew_s": 0.2,
        "center_offline_after_s": 2.0,
        "center_reconnect_max_s": 0.5,
        "center_uvloop": False,
        "center_metrics_listen": "127.0.0.1:0",
    }
    return CenterConfig(**(settings | overrides))


@contextlib.asynccontextmanager
async def running_center(db_url: str, **overrides: Any) -> AsyncIterator[CenterService]:
    service = CenterService(center_config(db_url, **overrides))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@contextlib.asynccontextmanager
async def running_agent(
    state_dir: Path, center_port: int, name: str = "agent-1", **overrides: Any
) -> AsyncIterator[AgentService]:
    settings: dict[str, Any] = {
        "secret": SECRET,
        "agent_listen": "127.0.0.1:0",
        "agent_center": f"127.0.0.1:{center_port}",
        "agent_state_dir": state_dir / name,
        "agent_name": name,
        "agent_register_interval_s": 1,
        "agent_kill_grace_s": 2.0,
        "agent_metrics_listen": "127.0.0.1:0",
    }
    async with AgentService(AgentConfig(**(settings | overrides))) as service:
        yield service


async def poll(
    check: Callable[[], Awaitable[T | None]], timeout_s: float, every_s: float = 0.05
) -> T:
    """Await a database state that has no event to wait on: ask again until it holds, bounded."""
    async with asyncio.timeout(timeout_s):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(every_s)


async def add_group(engine: AsyncEngine, name: str = "ops") -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(cron_group).values(name=name, create_time=now_us(), update_time=now_us())
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


async def agent_row(engine: AsyncEngine, name: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(agents).where(agents.c.name == name))).mappings().first()


async def approve_agent(engine: AsyncEngine, name: str, gid: int | None = None) -> int:
    """What an operator does: wait for the agent to appear as pending, then enable it."""
    row = await poll(lambda: agent_row(engine, name), 10)
    async with engine.begin() as conn:
        await conn.execute(
            update(agents)
            .where(agents.c.id == row["id"])
            .values(status=1, gid=gid, update_time=now_us())
        )
    return int(row["id"])


async def add_rule(engine: AsyncEngine, aids: list[int], **values: Any) -> int:
    stamp = now_us()
    row = {
        "name": "rule",
        "rule": "* * * * * *",
        "execute": "/bin/true",
        "run_user": "nobody",
        "create_time": stamp,
        "update_time": stamp,
    } | values
    async with engine.begin() as conn:
        task_id = int((await conn.execute(insert(crontab).values(**row))).inserted_primary_key[0])  # type: ignore[index]
        for aid in aids:
            await conn.execute(insert(crontab_agent).values(task_id=task_id, aid=aid))
    return task_id


async def edit_rule(engine: AsyncEngine, task_id: int, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(crontab).where(crontab.c.id == task_id).values(update_time=now_us(), **values)
        )


async def runs_of(engine: AsyncEngine, task_id: int, *where: Any) -> list[Any]:
    async with engine.connect() as conn:
        query = select(task_process).where(task_process.c.task_id == task_id, *where)
        order = (
            task_process.c.sched_us,
            task_process.c.attempt,
            task_process.c.instance,
            task_process.c.id,
        )
        return list((await conn.execute(query.order_by(*order))).mappings())


async def rule_row(engine: AsyncEngine, task_id: int) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(crontab).where(crontab.c.id == task_id))).mappings().one()


def at_rule(seconds_ahead: float) -> str:
    """A one-off rule firing `seconds_ahead` from now (rounded up to a whole second)."""
    import datetime as dt
    import math

    when = math.ceil(time.time() + seconds_ahead)
    return "@at " + dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def add_command(engine: AsyncEngine, kind: str, *, task_id: int = 0, runid: str = "") -> int:
    """What the admin does for run now / kill: a row the leader carries out."""
    from center.tables import center_command

    async with engine.begin() as conn:
        result = await conn.execute(
            insert(center_command).values(
                kind=kind, task_id=task_id, runid=runid, user_id=1, created_us=now_us()
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


async def command_done(engine: AsyncEngine, command_id: int) -> Any:
    from center.tables import center_command

    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(center_command).where(center_command.c.id == command_id)))
            .mappings()
            .one()
        )
    return row if row["status"] != "pending" else None
