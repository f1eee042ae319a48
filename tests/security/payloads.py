"""Hostile text planted in every field a user or an agent can set, the way each gets there."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center.tables import (
    admin_user,
    agents,
    alert_channel,
    alert_notification,
    center_command,
    crontab,
    daemon_state,
    task_output,
    task_process,
)
from protocol.messages import Register
from protocol.stream import Connection, open_handshake
from protocol.tls import material_context
from tests.admin.seed import CHEAP_HASH, World, add_run, now_us

# TLS as an agent that has not enrolled yet: no certificate, none checked.
ENROLLING = material_context(None, "", server=False)


def script(tag: str) -> str:
    """A script element; `tag` names the field, so a dialog says which one was not escaped."""
    return f'<script>alert("{tag}")</script>'


def img(tag: str) -> str:
    """Breaks out of a quoted attribute into an element with an event handler."""
    return f'"><img src=x onerror=alert("{tag}")>'


def both(tag: str) -> str:
    return script(tag) + img(tag)


async def _update(engine: AsyncEngine, table: Any, row_id: int, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(table).where(table.c.id == row_id).values(**values))


async def _insert(engine: AsyncEngine, table: Any, **values: Any) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(insert(table).values(**values))
        return int(result.inserted_primary_key[0])  # type: ignore[index]


async def plant_rule_and_agent(engine: AsyncEngine, w: World) -> None:
    """The center's words on a rule, every text column of it, and an agent's reported figures."""
    await _update(
        engine,
        crontab,
        w.ids["rule_a"],
        error=both("error"),
        notice=both("notice"),
        run_user=script("ru"),
        rule=both("rule"),
        timezone=both("tz"),
        cwd=both("cwd"),
        selector=both("sel"),
        description=both("desc"),
        execute=both("exec"),
        env=json.dumps({"X": both("env")}),
    )
    await _update(
        engine,
        agents,
        w.ids["agent_a"],
        version=script("v"),
        last_error=both("lasterr"),
        labels=json.dumps({both("lk"): both("lv")}),
        agent_labels=json.dumps({both("ak"): both("av")}),
        users=json.dumps({"allowed": [both("users")], "allow_root": False}),
    )


async def plant_runs(engine: AsyncEngine, w: World) -> None:
    """A finished run's output and reason, live output of a running one, a daemon's last exit,
    a command's result: what agents report through the center."""
    stamp = now_us()
    w.ids["run_done"] = await add_run(
        engine,
        w.ids["rule_a"],
        w.ids["agent_a"],
        sched_us=stamp - 10**7,
        status="failed",
        code=1,
        end=stamp,
        result=both("result"),
        reason=both("reason"),
        run_user=script("u"),
    )
    async with engine.connect() as conn:
        query = select(task_process.c.runid).where(task_process.c.id == w.ids["run_a"])
        runid = (await conn.execute(query)).scalar_one()
    chunk = both("live").encode()
    await _insert(engine, task_output, runid=runid, offset=0, data=chunk, created_us=stamp)
    await _insert(
        engine,
        daemon_state,
        task_id=w.ids["rule_a"],
        aid=w.ids["agent_a"],
        wanted=1,
        crash_looping=1,
        last_exit=both("exit"),
        updated_us=stamp,
    )
    await _update(engine, center_command, w.ids["command_a"], status="failed", result=both("cmd"))


async def plant_alerts_and_users(engine: AsyncEngine, w: World) -> None:
    """A notification's error, a channel target that is a javascript: URL, a hostile user name
    (as an import or SQL would write them: the admin's own checks refuse such names)."""
    stamp = now_us()
    await _insert(
        engine,
        alert_notification,
        channel_id=w.ids["channel_a"],
        event="run_failed",
        subject=script("subj"),
        kind="alert",
        payload=json.dumps({"x": both("payload")}),
        status="failed",
        created_us=stamp,
        error=both("noteerr"),
    )
    await _update(engine, alert_channel, w.ids["channel_a"], target='javascript:alert("target")')
    w.ids["evil_user"] = await _insert(
        engine,
        admin_user,
        name=both("user")[:64],
        password_hash=CHEAP_HASH,
        create_time=stamp,
        update_time=stamp,
    )


async def plant_through_api(api: httpx.AsyncClient, w: World) -> None:
    """What people can type: a group, a rule, an alert channel, through the API."""
    root, admin = w.auth("root"), w.auth("admin")
    rule = {
        "gid": w.alpha,
        "name": both("apirule"),
        "rule": "@hourly",
        "execute": both("apiexec"),
        "shell": True,  # the quotes of the payload need not balance
        "description": both("apidesc"),
        "env": {"Y": both("apienv")},
        "agents": [w.ids["agent_a"]],
        "run_user": "nobody",
    }
    group = {"name": both("grp")[:64], "description": both("gdesc")}
    channel = {"gid": w.alpha, "name": both("chan")[:64], "target": "https://hooks.example/x"}
    answers = [
        await api.patch(f"/api/v1/groups/{w.alpha}", headers=admin, json=group),
        await api.post("/api/v1/rules", headers=admin, json=rule),
        await api.post("/api/v1/alert-channels", headers=admin, json=channel),
        await api.post("/api/v1/groups", headers=root, json={"name": both("newgrp")[:64]}),
    ]
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
    w.ids["api_rule"] = answers[1].json()["id"]
    # A failed login under a hostile user name lands in the audit log as that name.
    login = {"username": both("login")[:64], "password": "x" * 8}
    assert (await api.post("/api/v1/auth/token", json=login)).status_code == 401


async def register_hostile_agent(port: int, secret: str) -> None:
    """An agent host under an attacker's control registers with names made to be rendered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ENROLLING)
    conn = Connection(reader, writer)
    register = Register(
        name=both("agent"),
        host=both("host")[:60],
        port=9501,
        version=script("ver"),
        labels={both("rk"): both("rv")},
        users=[both("ruser")],
    )
    try:
        async with asyncio.timeout(10):
            await open_handshake(conn, (secret.encode(),), role="agent", name=both("hello"))
            conn.send(register)
            await conn.drain()
            await conn.recv()  # registered
    finally:
        await conn.close()
