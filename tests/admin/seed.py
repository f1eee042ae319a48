"""Rows for admin tests written straight to the database: groups, users, agents, rules, runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from admin import credentials
from admin.queries import users
from center.tables import (
    agents,
    api_token,
    cron_group,
    crontab,
    crontab_agent,
    task_output,
    task_process,
)

# Passwords use cheap argon2 parameters so that logging in stays fast in tests.

PASSWORD = "correct horse battery"
# Verification takes the parameters stored in the hash: these make a login take ~1 ms.
CHEAP_HASH = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)


def now_us() -> int:
    return time.time_ns() // 1000


async def _insert(engine: AsyncEngine, table: Any, **values: Any) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(insert(table).values(**values))
        return int(result.inserted_primary_key[0])  # type: ignore[index]


async def add_group(engine: AsyncEngine, name: str) -> int:
    return await _insert(engine, cron_group, name=name, create_time=now_us(), update_time=now_us())


async def add_user(
    engine: AsyncEngine, name: str, *, superadmin: bool = False, roles: dict[int, str] | None = None
) -> tuple[int, str]:
    """A user with roles per group and an API token; returns (id, token)."""
    async with engine.begin() as conn:
        user_id = await users.insert_user(conn, name, CHEAP_HASH, superadmin, now_us())
        for gid, role in (roles or {}).items():
            await users.put_grant(conn, user_id, gid, role, now_us())
    token = credentials.new_api_token()
    await _insert(
        engine,
        api_token,
        user_id=user_id,
        name="test",
        token_hash=credentials.digest(token),
        prefix=token[:12],
        created_us=now_us(),
    )
    return user_id, token


async def add_agent(engine: AsyncEngine, name: str, gid: int | None, status: int = 1) -> int:
    return await _insert(
        engine,
        agents,
        name=name,
        gid=gid,
        status=status,
        ip="127.0.0.1",
        port=9501,
        heart_beat_time=now_us(),
        labels='{"role": "test"}',
        create_time=now_us(),
        update_time=now_us(),
    )


async def add_rule(engine: AsyncEngine, gid: int, aids: list[int], **values: Any) -> int:
    row = {
        "gid": gid,
        "name": "rule",
        "rule": "*/5 * * * * *",
        "execute": "/bin/echo hi",
        "run_user": "nobody",
        "create_time": now_us(),
        "update_time": now_us(),
    } | values
    task_id = await _insert(engine, crontab, **row)
    for aid in aids:
        await _insert(engine, crontab_agent, task_id=task_id, aid=aid)
    return task_id


async def add_run(engine: AsyncEngine, task_id: int, aid: int, **values: Any) -> int:
    sched = values.pop("sched_us", now_us() // 1_000_000 * 1_000_000)
    row = {
        "task_id": task_id,
        "runid": f"{task_id}-{sched}-{aid}-0-0",
        "aid": aid,
        "status": "running",
        "sched_us": sched,
        "start": sched + 1000,
        "created_us": sched,
        "updated_us": sched,
    } | values
    return await _insert(engine, task_process, **row)


async def add_output(engine: AsyncEngine, runid: str, offset: int, data: bytes) -> None:
    await _insert(engine, task_output, runid=runid, offset=offset, data=data, created_us=now_us())


@dataclass
class World:
    """Two groups, alpha and beta, with a user of each role, agents, rules and running runs."""

    alpha: int = 0
    beta: int = 0
    tokens: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


async def build_world(engine: AsyncEngine) -> World:
    w = World(alpha=await add_group(engine, "alpha"), beta=await add_group(engine, "beta"))
    people: dict[str, dict[str, Any]] = {
        "root": {"superadmin": True},
        "viewer": {"roles": {w.alpha: "viewer"}},
        "operator": {"roles": {w.alpha: "operator"}},
        "admin": {"roles": {w.alpha: "admin"}},
        "beta_operator": {"roles": {w.beta: "operator"}},
        "beta_admin": {"roles": {w.beta: "admin"}},
        "nobody": {},
    }
    for name, kwargs in people.items():
        w.user_ids[name], w.tokens[name] = await add_user(engine, name, **kwargs)
    w.ids["agent_a"] = await add_agent(engine, "host-a", w.alpha)
    w.ids["agent_b"] = await add_agent(engine, "host-b", w.beta)
    w.ids["pending"] = await add_agent(engine, "host-new", None, status=0)
    w.ids["rule_a"] = await add_rule(engine, w.alpha, [w.ids["agent_a"]], name="alpha job")
    w.ids["rule_b"] = await add_rule(engine, w.beta, [w.ids["agent_b"]], name="beta job")
    w.ids["run_a"] = await add_run(engine, w.ids["rule_a"], w.ids["agent_a"])
    w.ids["run_b"] = await add_run(engine, w.ids["rule_b"], w.ids["agent_b"])
    return w
