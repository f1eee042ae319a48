"""Fleet services in the admin: placement states, rebalance and drain commands, field errors,
and the pages that show them (rows written as the leader would)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from admin.services.fleet import instance_states
from center.tables import agents, audit_log, center_command, daemon_placement, daemon_state
from tests.admin.seed import World, add_agent, add_rule, now_us
from tests.admin.test_pages import _session_client


async def _service(app: Any, world: World, **values: Any) -> int:
    engine = app.state.engine
    values = {"rule": "", "is_daemon": 1, "routing": "least_loaded", "process_num": 3} | values
    return await add_rule(engine, world.alpha, [], name="consumer", **values)


async def _place(app: Any, task_id: int, slots: list[tuple[int, int, str]]) -> None:
    async with app.state.engine.begin() as conn:
        for instance, aid, reason in slots:
            await conn.execute(
                insert(daemon_placement).values(
                    task_id=task_id, instance=instance, aid=aid, reason=reason, since_us=now_us()
                )
            )


@pytest.mark.parametrize(
    ("rows", "states"),
    [
        ([(0, 1, 2, 0), (1, 1, 2, 0)], ["running", "running"]),
        ([(0, 1, 1, 0), (1, 1, 1, 0)], ["starting", "starting"]),
        ([(0, 1, 0, 1), (1, 0, None, None)], ["crash_looping", "unplaced"]),
    ],
)
def test_instance_states(rows: list[tuple[int, int, int | None, int | None]], states) -> None:
    given = [
        {
            "instance": i,
            "aid": a,
            "agent": "",
            "running": r,
            "crash_looping": c,
            "reason": "",
            "since_us": 0,
        }
        for i, a, r, c in rows
    ]
    assert [s["state"] for s in instance_states(given)] == states


async def test_placement_endpoint_and_pages(api: httpx.AsyncClient, world: World, app) -> None:
    task_id = await _service(app, world)
    aid = world.ids["agent_a"]
    await _place(
        app, task_id, [(0, aid, ""), (1, aid, ""), (2, 0, "no eligible agent takes new work")]
    )
    async with app.state.engine.begin() as conn:
        await conn.execute(
            insert(daemon_state).values(task_id=task_id, aid=aid, wanted=2, running=2)
        )
    answer = await api.get(f"/api/v1/rules/{task_id}/placement", headers=world.auth("viewer"))
    assert answer.status_code == 200, answer.text
    assert [(p["aid"], p["state"]) for p in answer.json()] == [
        (aid, "running"),
        (aid, "running"),
        (0, "unplaced"),
    ]
    assert answer.json()[2]["reason"] == "no eligible agent takes new work"
    other = await api.get(f"/api/v1/rules/{task_id}/placement", headers=world.auth("beta_admin"))
    assert other.status_code == 404


async def test_rebalance_makes_a_command_for_services_only(
    api: httpx.AsyncClient, world: World, app
) -> None:
    task_id = await _service(app, world)
    answer = await api.post(f"/api/v1/rules/{task_id}/rebalance", headers=world.auth("operator"))
    assert answer.status_code == 202, answer.text
    assert answer.json()["kind"] == "rebalance"
    listed = await api.post(
        f"/api/v1/rules/{world.ids['rule_a']}/rebalance", headers=world.auth("operator")
    )
    assert listed.status_code == 409
    async with app.state.engine.connect() as conn:
        kinds = (await conn.execute(select(center_command.c.kind))).scalars().all()
    assert list(kinds) == ["rebalance"]


async def test_drain_asks_to_confirm_when_a_service_is_left_without_agent(
    api: httpx.AsyncClient, world: World, app
) -> None:
    task_id = await _service(app, world)
    aid = world.ids["agent_a"]
    await _place(app, task_id, [(0, aid, "")])
    url, auth = f"/api/v1/agents/{aid}/drain", world.auth("admin")
    refused = await api.post(url, json={}, headers=auth)
    assert refused.status_code == 409, refused.text
    assert "consumer" in refused.text
    assert (await api.post(url, json={}, headers=world.auth("operator"))).status_code in (403, 404)
    done = await api.post(url, json={"confirm": True}, headers=auth)
    assert done.status_code == 202 and done.json() == {
        "aid": aid,
        "drain": 1,
        "unplaced": [task_id],
    }
    async with app.state.engine.connect() as conn:
        drain = await conn.scalar(select(agents.c.drain).where(agents.c.id == aid))
        audited = await conn.scalar(
            select(audit_log.c.id).where(audit_log.c.action == "agent.drain")
        )
    assert drain == 1 and audited is not None


async def test_a_second_agent_takes_the_service_so_no_confirmation(
    api: httpx.AsyncClient, world: World, app
) -> None:
    task_id = await _service(app, world)
    aid = world.ids["agent_a"]
    await add_agent(app.state.engine, "host-a2", world.alpha)
    await _place(app, task_id, [(0, aid, "")])
    done = await api.post(f"/api/v1/agents/{aid}/drain", json={}, headers=world.auth("admin"))
    assert done.status_code == 202 and done.json()["unplaced"] == []


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"max_per_agent": -1}, "max_per_agent"),
        ({"max_per_agent": 10**6}, "max_per_agent"),
        ({"partition_stop_s": 30, "is_daemon": False, "rule": "@hourly"}, "partition_stop_s"),
        ({"shard_total": 2}, "shard_total"),
    ],
)
async def test_fleet_fields_refused_with_their_name(
    api: httpx.AsyncClient, world: World, values: dict[str, Any], field: str
) -> None:
    body = {
        "gid": world.alpha,
        "name": "svc",
        "rule": "",
        "execute": "/bin/consumer",
        "is_daemon": True,
        "routing": "least_loaded",
        "process_num": 4,
    } | values
    answer = await api.post("/api/v1/rules", json=body, headers=world.auth("admin"))
    assert answer.status_code == 422, answer.text
    assert field in answer.text


async def test_pages_show_placement_drain_and_shortfall(
    api: httpx.AsyncClient, world: World, app
) -> None:
    task_id = await _service(app, world, max_per_agent=1)
    aid = world.ids["agent_a"]
    await _place(
        app,
        task_id,
        [(0, aid, ""), (1, 0, "max_per_agent 1 × 1 agents taking work is full"), (2, 0, "x")],
    )
    client = await _session_client(app, world, "admin")
    async with client:
        rule_page = (await client.get(f"/rules/{task_id}")).text
        agent_page = (await client.get(f"/agents/{aid}")).text
        dashboard = (await client.get("/")).text
    assert 'id="placement"' in rule_page and "1 of 3" in rule_page and "unplaced" in rule_page
    assert 'id="placed"' in agent_page and 'id="drain-form"' in agent_page
    assert 'id="short-services"' in dashboard and "1 of 3: max_per_agent 1" in dashboard
