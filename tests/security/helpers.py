"""Shared by the attack tests: logged-in clients, CSRF tokens, database snapshots, payloads."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from admin.services import auth
from center.dag import flow_runid, node_sched_us
from center.rule_versions import Author
from center.store.versions import record_version
from center.tables import (
    admin_grant,
    alert_channel,
    api_token,
    calendar,
    center_command,
    concurrency_key,
    metadata,
    task_process,
    workflow,
    workflow_node,
    workflow_run,
)
from tests.admin.conftest import BASE_URL
from tests.admin.seed import World, build_world, now_us

CLIENT_IP = "10.0.0.7"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
# Tables whose rows an attack must leave alone; the columns listed move on every request.
_SKIPPED_TABLES = frozenset({"audit_log", "login_throttle", "leader_lease", "ops_cursor"})
_MOVING_COLUMNS = {"admin_session": {"seen_us"}, "api_token": {"last_used_us"}}
FLOW_SCHED_US = 1_800_000_000_000_000  # the instant of each group's flow run


async def session_client(app: FastAPI, user_id: int, ip: str = CLIENT_IP) -> httpx.AsyncClient:
    """A browser-like client already logged in as the user (a session made without a password)."""
    engine = app.state.engine
    async with engine.connect() as conn:
        actor = await auth.actor_of(conn, user_id, ip)
    assert actor is not None
    session_id = await auth.start_session(engine, actor, app.state.config, None)
    client = api_client(app, ip)
    client.cookies.set("uc_session", session_id, domain="admin.test")
    return client


def api_client(app: FastAPI, ip: str = CLIENT_IP) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 5555))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=30)


async def csrf_of(client: httpx.AsyncClient, path: str = "/account") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF_RE.search(page.text)
    assert found is not None, f"no CSRF field on {path}"
    return found.group(1)


def _row(table: Table, row: Any) -> tuple[Any, ...]:
    moving = _MOVING_COLUMNS.get(table.name, set())
    return tuple(
        value for column, value in zip(table.c, row, strict=True) if column.name not in moving
    )


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table an attack could change (not the audit log, throttle, lease)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in _SKIPPED_TABLES:
                continue
            rows = (await conn.execute(select(table))).all()
            out[table.name] = sorted((_row(table, r) for r in rows), key=repr)
    return out


def changed_tables(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> list[str]:
    return [name for name in before if before[name] != after.get(name)]


async def _insert(engine: AsyncEngine, table: Table, **values: Any) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(insert(table).values(**values))
        return int(result.inserted_primary_key[0])  # type: ignore[index]


async def _id_of(engine: AsyncEngine, table: Table, **where: Any) -> int:
    async with engine.connect() as conn:
        query = select(table.c.id).where(*(table.c[k] == v for k, v in where.items()))
        return int((await conn.execute(query)).scalar_one())


async def build_attack_world(engine: AsyncEngine) -> World:
    """tests/admin's two groups, plus an alert channel, a command, grants and tokens per group."""
    w = await build_world(engine)
    stamp = now_us()
    for name, gid in (("a", w.alpha), ("b", w.beta)):
        w.ids[f"channel_{name}"] = await _insert(
            engine,
            alert_channel,
            gid=gid,
            name=f"pager-{name}",
            kind="webhook",
            target="https://hooks.example/uc",
            secret=f"hook-secret-{name}",
            events="run_failed",
            create_time=stamp,
            update_time=stamp,
        )
        w.ids[f"calendar_{name}"] = await _insert(
            engine,
            calendar,
            gid=gid,
            name=f"freeze-{name}",
            base="cn-workdays",
            include="2026-10-10",
            exclude="",
            create_time=stamp,
            update_time=stamp,
        )
        w.ids[f"key_{name}"] = await _insert(
            engine,
            concurrency_key,
            gid=gid,
            key=f"db-{name}",
            limit=2,
            create_time=stamp,
            update_time=stamp,
        )
        w.ids[f"command_{name}"] = await _insert(
            engine,
            center_command,
            kind="run",
            task_id=w.ids[f"rule_{name}"],
            user_id=w.user_ids["root"],
            created_us=stamp,
        )
        async with engine.begin() as conn:  # the seed's rules have no history of their own
            author = Author(w.user_ids["root"], "root")
            w.ids[f"version_{name}"] = await record_version(
                conn, w.ids[f"rule_{name}"], author, stamp
            )
    for name, gid in (("a", w.alpha), ("b", w.beta)):
        await _add_workflow(engine, w, name, gid, stamp)
    w.ids["grant_a"] = await _id_of(engine, admin_grant, user_id=w.user_ids["viewer"])
    w.ids["grant_b"] = await _id_of(engine, admin_grant, user_id=w.user_ids["beta_operator"])
    w.ids["token_b"] = await _id_of(engine, api_token, user_id=w.user_ids["beta_admin"])
    w.ids["token_root"] = await _id_of(engine, api_token, user_id=w.user_ids["root"])
    return w


async def _add_workflow(engine: AsyncEngine, w: World, name: str, gid: int, stamp: int) -> None:
    """A workflow of the group's rule, with one flow run in which that rule succeeded."""
    rule = w.ids[f"rule_{name}"]
    wid = await _insert(
        engine, workflow, gid=gid, name=f"flow-{name}", create_time=stamp, update_time=stamp
    )
    w.ids[f"workflow_{name}"] = wid
    runid = flow_runid(wid, FLOW_SCHED_US)
    sched = node_sched_us(wid, FLOW_SCHED_US)
    async with engine.begin() as conn:
        await conn.execute(insert(workflow_node).values(workflow_id=wid, task_id=rule))
        await conn.execute(
            insert(workflow_run).values(
                id=runid, workflow_id=wid, sched_us=FLOW_SCHED_US, status="success"
            )
        )
        await conn.execute(
            insert(task_process).values(
                task_id=rule,
                runid=f"{rule}-{sched}-0-0-0",
                aid=w.ids[f"agent_{name}"],
                status="success",
                sched_us=sched,
                flow_runid=runid,
                created_us=stamp,
                updated_us=stamp,
            )
        )


def flow_ids(w: World) -> dict[str, str]:
    """Each group's flow run id (World.ids holds numbers only)."""
    return {f"flow_{n}": flow_runid(w.ids[f"workflow_{n}"], FLOW_SCHED_US) for n in "ab"}


def leaf_routes(router: APIRouter) -> list[APIRoute]:
    """Every endpoint under `router`, through the routers it includes (FastAPI nests them)."""
    out: list[APIRoute] = []
    for route in router.routes:
        if isinstance(route, APIRoute):
            out.append(route)
        elif (inner := getattr(route, "original_router", None)) is not None:
            out.extend(leaf_routes(inner))
    return out


def depends_on(route: APIRoute, function: Any) -> bool:
    """Whether `function` is among the route's dependencies, however deep."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if dependant.call is function:
            return True
        pending.extend(dependant.dependencies)
    return False
