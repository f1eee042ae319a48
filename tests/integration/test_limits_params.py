"""Shared limits and parameters end to end: through the admin API, with a real center and
real agents. A concurrency key caps runs across agents; a manual run carries params and env
overrides to the agent; a run-at run starts at its time, or never if killed first."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from admin.app import create_app
from admin.config import AdminConfig
from center.service import CenterService
from center.tables import concurrency_key, task_process
from protocol import statuses
from tests.admin.seed import add_user
from tests.integration.cluster import (
    add_group,
    add_rule,
    approve_agent,
    now_us,
    poll,
    running_agent,
    running_center,
    runs_of,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]
S = 1_000_000
WINDOW_S = 20.0


@pytest.fixture
async def admin_api(db_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    app = create_app(AdminConfig(db_url=db_url))
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 5555))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as c:
            yield c, app
    finally:
        await app.state.engine.dispose()


async def _connected(center: CenterService, aids: list[int]) -> None:
    def linked() -> bool:
        leader = center.leader
        return leader is not None and all(leader.pool.connected(a) for a in aids)

    async def check() -> bool:
        return linked()

    await poll(check, 15)


def most_at_once(rows: list[Any]) -> int:
    """The largest number of runs whose [start, end) intervals overlap at one instant."""
    edges = sorted(
        itertools.chain.from_iterable(((r["start"], 1), (r["end"], -1)) for r in rows),
        key=lambda e: (e[0], e[1]),  # an end before a start at the same instant
    )
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


async def _key_known(center: CenterService, gid: int, key: str) -> None:
    """As with an operator, who makes a key before the rules that hold it: the leader reads
    the keys every second."""

    async def known() -> bool:
        return center.leader is not None and (gid, key) in center.leader.limits.keys

    await poll(known, 5)


async def add_key(engine: AsyncEngine, gid: int, key: str, limit: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(concurrency_key).values(gid=gid, key=key, limit=limit))


async def test_a_key_of_limit_2_caps_five_rules_across_two_agents(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """Five every-second rules of 1.5 s holding `db-heavy` (limit 2) on two agents: never more
    than two running at once over the window, both agents used, the skipped runs saying why
    and naming the key's holders, and the queued rule's runs all run in turn."""
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port, name="key-1"),
        running_agent(tmp_path, center.registration_port, name="key-2"),
    ):
        gid = await add_group(engine)
        aids = [await approve_agent(engine, n, gid) for n in ("key-1", "key-2")]
        await _connected(center, aids)
        await add_key(engine, gid, "db-heavy", 2)
        await _key_known(center, gid, "db-heavy")
        common = {"gid": gid, "concurrency_keys": "db-heavy", "execute": "/bin/sleep 1.5"}
        task_ids = [await add_rule(engine, [aids[i % 2]], **common) for i in range(4)]
        # A queued rule that fires every 4 s: its runs wait for room, first come first served.
        queued = await add_rule(engine, [aids[1]], **common, rule="*/4 * * * * *", overlap="queue")
        start_us = now_us()
        await asyncio.sleep(WINDOW_S)  # the window observed: nothing to await but time
        end_us = now_us()
    rows = [r for t in [*task_ids, queued] for r in await runs_of(engine, t)]
    ran = [r for r in rows if r["start"] and r["end"] and start_us <= r["start"] < end_us]
    # A slot freed at x.5 s is taken at the next whole second (the fires), so each of the
    # two slots runs about one 1.5 s run every 2 s.
    assert len(ran) >= 2 * WINDOW_S / 2 * 0.7, f"the key was used: {len(ran)} runs"
    assert most_at_once(ran) == 2, "never more than the key's limit at once, across agents"
    assert {r["aid"] for r in ran} == set(aids)
    skipped = [r["reason"] for r in rows if r["status"] == statuses.SKIPPED]
    assert skipped and all(
        s.startswith("concurrency key db-heavy full: 2/2 held by runs") for s in skipped
    )
    waited = [r for r in rows if r["task_id"] == queued and r["sched_us"] < end_us - 5 * S]
    assert waited and all(r["status"] != statuses.SKIPPED for r in waited)


async def _token(engine: AsyncEngine, gid: int) -> dict[str, str]:
    _, token = await add_user(engine, "ops", roles={gid: "operator"})
    return {"Authorization": f"Bearer {token}"}


async def _done(engine: AsyncEngine, task_id: int) -> list[Any]:
    return await runs_of(engine, task_id, task_process.c.status.in_(statuses.FINAL))


async def test_run_now_with_params_and_env_override_reaches_the_command(
    db_url: str, engine: AsyncEngine, tmp_path: Path, admin_api: tuple[httpx.AsyncClient, FastAPI]
) -> None:
    """Params are split and appended (shell-quoted for a shell rule), the env override beats
    the rule's own value; both are on the run row and in GET /runs/{id}."""
    api, _ = admin_api
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port),
    ):
        gid = await add_group(engine)
        aid = await approve_agent(engine, "agent-1", gid)
        headers = await _token(engine, gid)
        command = 'printf \'[%s]\' "$MODE" "$KEEP"'
        task_id = await add_rule(
            engine, [aid], gid=gid, rule="@yearly", shell=1, execute=command,
            env='{"MODE": "rule", "KEEP": "kept"}', allow_params=1,
        )  # fmt: skip
        body = {"params": "'a b' c;id $(id)", "env": {"MODE": "override"}}
        answer = await api.post(f"/api/v1/rules/{task_id}/run", json=body, headers=headers)
        assert answer.status_code == 202, answer.text
        (run,) = await poll(lambda: _done(engine, task_id), 15)
    assert run["status"] == statuses.SUCCESS, run["reason"]
    assert run["result"] == "[override][kept][a b][c;id][$(id)]"
    shown = await api.get(f"/api/v1/runs/{run['id']}", headers=headers)
    assert shown.json()["params"] == body["params"]
    assert shown.json()["env_override"] == '{"MODE": "override"}'


def _iso(at_us: int) -> str:
    return datetime.fromtimestamp(at_us / S, UTC).isoformat()


async def test_run_at_starts_at_its_time_and_a_killed_one_never_starts(
    db_url: str, engine: AsyncEngine, tmp_path: Path, admin_api: tuple[httpx.AsyncClient, FastAPI]
) -> None:
    """A run-at 2 s ahead is planned for that instant and starts within 0.5 s of it; another,
    killed while planned, is recorded killed and never reaches its agent."""
    api, _ = admin_api
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port),
    ):
        gid = await add_group(engine)
        aid = await approve_agent(engine, "agent-1", gid)
        await _connected(center, [aid])
        headers = await _token(engine, gid)
        task_id = await add_rule(engine, [aid], gid=gid, rule="@yearly", execute="/bin/true")
        at_us = (now_us() // S + 3) * S
        url = f"/api/v1/rules/{task_id}/run"
        answer = await api.post(url, json={"run_at": _iso(at_us)}, headers=headers)
        assert answer.status_code == 202, answer.text
        later = at_us + 2 * S
        other = await api.post(url, json={"run_at": _iso(later)}, headers=headers)
        assert other.status_code == 202, other.text
        planned = await poll(lambda: runs_of(engine, task_id, task_process.c.sched_us == later), 10)
        killed = await api.post(f"/api/v1/runs/{planned[0]['id']}/kill", headers=headers)
        assert killed.status_code == 202, killed.text
        success = task_process.c.status == statuses.SUCCESS
        (ran,) = await poll(lambda: runs_of(engine, task_id, success), 10)
        await asyncio.sleep((later - now_us()) / S + 1.0)  # past the killed one's instant
    rows = await runs_of(engine, task_id)
    assert [(r["sched_us"], r["status"]) for r in rows] == [
        (at_us, statuses.SUCCESS),
        (later, statuses.KILLED),
    ]
    assert ran["trigger"] == "manual" and abs(ran["start"] - at_us) <= S // 2
    assert rows[1]["start"] == 0, "the killed run never started"
