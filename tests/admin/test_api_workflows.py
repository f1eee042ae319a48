"""Workflows over the API: CRUD with the graph, checks naming the field, permissions, run now,
re-run from a node, and flow runs whose node states come from their task_process rows."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select

from center.dag import flow_runid, node_sched_us
from center.tables import audit_log, center_command, crontab, workflow, workflow_run
from tests.admin.seed import World, add_agent, add_rule, add_run, now_us

FLOW_SCHED = 1_800_000_000_000_000


async def _rules(app: FastAPI, world: World, *names: str, gid: int | None = None) -> list[int]:
    engine = app.state.engine
    aid = world.ids["agent_a"]
    return [await add_rule(engine, gid or world.alpha, [aid], name=n, rule="") for n in names]


def _body(world: World, nodes: list[int], edges: list[tuple[int, int, str]], **extra: Any):
    return {
        "gid": world.alpha,
        "name": "nightly",
        "rule": "0 2 * * *",
        "timezone": "Asia/Shanghai",
        "nodes": [{"task_id": t} for t in nodes],
        "edges": [{"parent_task_id": p, "child_task_id": c, "when": w} for p, c, w in edges],
    } | extra


async def _create(api: httpx.AsyncClient, world: World, body: dict[str, Any]) -> dict[str, Any]:
    answer = await api.post("/api/v1/workflows", json=body, headers=world.auth("admin"))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def test_crud_with_the_graph(api: httpx.AsyncClient, world: World, app: FastAPI):
    """A diamond is stored with its nodes and edges, listed per group, changed (update_time
    moves on every change), replaced by PUT, and deleted as status -1; each write audited."""
    a, b, c, d = await _rules(app, world, "extract", "fetch", "load", "report")
    edges = [(a, c, "success"), (b, c, "always"), (c, d, "failure")]
    before = now_us()
    body = _body(world, [a, b, c, d], edges, overlap="queue", rule="H 2 * * *")
    body |= {"calendar": "cn-workdays", "calendar_mode": "except", "calendar_fallback": "weekdays"}
    row = await _create(api, world, body)
    assert row["update_time"] >= before and row["status"] == 1 and row["overlap"] == "queue"
    assert (row["calendar"], row["calendar_mode"], row["calendar_fallback"]) == (
        "cn-workdays",
        "except",
        "weekdays",
    )
    assert [n["task_id"] for n in row["nodes"]] == [a, b, c, d]
    assert {(e["parent_task_id"], e["child_task_id"], e["when"]) for e in row["edges"]} == set(
        edges
    )
    wid = row["id"]
    got = (await api.get(f"/api/v1/workflows/{wid}", headers=world.auth("viewer"))).json()
    assert got["nodes"][0] == {"task_id": a, "join": "all", "name": "extract"}
    listed = await api.get(f"/api/v1/workflows?gid={world.alpha}", headers=world.auth("viewer"))
    assert [w["id"] for w in listed.json()] == [wid] and listed.json()[0]["node_count"] == 4
    other = await api.get(f"/api/v1/workflows?gid={world.beta}", headers=world.auth("root"))
    assert other.json() == []

    patched = await api.patch(
        f"/api/v1/workflows/{wid}",
        json={
            "name": "nightly2",
            "nodes": [{"task_id": a}, {"task_id": c, "join": "any"}],
            "edges": [{"parent_task_id": a, "child_task_id": c}],
        },
        headers=world.auth("admin"),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "nightly2" and patched.json()["rule"] == "H 2 * * *"
    assert patched.json()["nodes"][1]["join"] == "any"
    assert patched.json()["update_time"] > row["update_time"]

    put = await api.put(
        f"/api/v1/workflows/{wid}",
        json={"gid": world.alpha, "name": "by hand", "nodes": [{"task_id": d}]},
        headers=world.auth("admin"),
    )
    assert put.status_code == 200, put.text
    assert (put.json()["rule"], put.json()["overlap"], put.json()["edges"]) == ("", "skip", [])
    assert put.json()["calendar"] == ""
    assert put.json()["update_time"] > patched.json()["update_time"]

    gone = await api.delete(f"/api/v1/workflows/{wid}", headers=world.auth("admin"))
    assert gone.status_code == 204
    assert (
        await api.get(f"/api/v1/workflows/{wid}", headers=world.auth("admin"))
    ).status_code == 404
    async with app.state.engine.connect() as conn:
        status = await conn.scalar(select(workflow.c.status).where(workflow.c.id == wid))
        actions = (
            (
                await conn.execute(
                    select(audit_log.c.action).where(audit_log.c.object_type == "workflow")
                )
            )
            .scalars()
            .all()
        )
    assert status == -1
    assert sorted(actions) == sorted(
        ["workflow.create", "workflow.update", "workflow.update", "workflow.delete"]
    )


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"edges": "cycle"}, "edges", "cycle"),
        ({"edges": "self"}, "edges", "cannot follow itself"),
        ({"nodes": "beta"}, "nodes", "in another group"),
        ({"nodes": "daemon"}, "nodes", "daemon"),
        ({"nodes": "missing"}, "nodes", "no rule"),
        ({"nodes": []}, "nodes", "at least one rule"),
        ({"edges": "outside"}, "edges", "not a node"),
        ({"edges": "bad when"}, "when", "sometimes"),
        ({"join": "most"}, "join", "most"),
        ({"rule": "61 * * * *"}, "rule", "59"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Mars/Olympus"),
        ({"overlap": "replace"}, "overlap", "skip, queue, parallel"),
        ({"misfire": "never"}, "misfire", "skip, once, all"),
        ({"misfire_window_s": -1}, "misfire_window_s", "range"),
        ({"status": 7}, "status", "enabled"),
        ({"name": "  "}, "name", "empty"),
        ({"gid": None}, "gid", "null"),
        ({"calendar": "nope"}, "calendar", "no calendar 'nope'"),
        ({"calendar": "cn-workdays", "calendar_mode": "mostly"}, "calendar_mode", "only, except"),
        ({"calendar_fallback": "guess"}, "calendar_fallback", "skip, weekdays"),
        ({"rule": "H(70-80) * * * *"}, "rule", "H"),
    ],
)
async def test_a_bad_workflow_is_refused_naming_the_field(
    api: httpx.AsyncClient, world: World, app: FastAPI, change, field, words
):
    """Each mistake is a 422 whose error names the field; nothing is stored."""
    a, c = await _rules(app, world, "a", "c")
    [daemon] = await _rules(app, world, "d")
    async with app.state.engine.begin() as conn:
        await conn.execute(crontab.update().where(crontab.c.id == daemon).values(is_daemon=1))
    body = _body(world, [a, c], [(a, c, "success")])
    specials = {
        ("edges", "cycle"): {"edges": [(a, c, "success"), (c, a, "success")]},
        ("edges", "self"): {"edges": [(a, a, "success")]},
        ("edges", "outside"): {"edges": [(a, 999_999, "success")]},
        ("edges", "bad when"): {"edges": [(a, c, "sometimes")]},
        ("nodes", "beta"): {"nodes": [a, world.ids["rule_b"]]},
        ("nodes", "daemon"): {"nodes": [a, c, daemon]},
        ("nodes", "missing"): {"nodes": [a, c, 999_999]},
    }
    for key, value in change.items():
        special = specials.get((key, value)) if isinstance(value, str) else None
        if special and "edges" in special:
            body["edges"] = _body(world, [], special["edges"])["edges"]
        elif special:
            body["nodes"] = [{"task_id": t} for t in special["nodes"]]
        elif key == "join":
            body["nodes"][1]["join"] = value
        else:
            body[key] = value
    answer = await api.post("/api/v1/workflows", json=body, headers=world.auth("admin"))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and words in error["reason"]
    async with app.state.engine.connect() as conn:
        assert (await conn.execute(select(workflow))).first() is None


async def test_permissions(api: httpx.AsyncClient, world: World, app: FastAPI):
    """Viewers read; only group admins edit; operators pause and run; other groups see 404."""
    a, c = await _rules(app, world, "a", "c")
    wid = (await _create(api, world, _body(world, [a, c], [(a, c, "success")])))["id"]
    url = f"/api/v1/workflows/{wid}"
    assert (await api.get(url, headers=world.auth("viewer"))).status_code == 200
    for user in ("viewer", "operator"):
        answer = await api.patch(url, json={"name": "x"}, headers=world.auth(user))
        assert answer.status_code == 403, user
        assert (await api.delete(url, headers=world.auth(user))).status_code == 403
        create = await api.post(
            "/api/v1/workflows", json=_body(world, [a], []), headers=world.auth(user)
        )
        assert create.status_code == 403
    assert (
        await api.patch(url, json={"status": 0}, headers=world.auth("viewer"))
    ).status_code == 403
    paused = await api.patch(url, json={"status": 0}, headers=world.auth("operator"))
    assert paused.status_code == 200 and paused.json()["status"] == 0
    assert (await api.post(f"{url}/run", headers=world.auth("viewer"))).status_code == 403
    assert (await api.post(f"{url}/run", headers=world.auth("operator"))).status_code == 202
    for user in ("beta_admin", "nobody"):
        assert (await api.get(url, headers=world.auth(user))).status_code == 404
        assert (await api.post(f"{url}/run", headers=world.auth(user))).status_code == 404
    listed = await api.get("/api/v1/workflows", headers=world.auth("beta_admin"))
    assert listed.json() == []


async def test_run_now_inserts_a_flow_run_command_with_args(
    api: httpx.AsyncClient, world: World, app: FastAPI
):
    """Run now writes a pending `flow_run` command for the workflow, its args holding the
    trigger, params and env; the command can be polled, and bad env is a 422 naming `env`."""
    [a] = await _rules(app, world, "a")
    wid = (await _create(api, world, _body(world, [a], [])))["id"]
    body = {"params": "--day 2026-10-01", "env": {"REGION": "cn"}}
    answer = await api.post(
        f"/api/v1/workflows/{wid}/run", json=body, headers=world.auth("operator")
    )
    assert answer.status_code == 202, answer.text
    command = answer.json()
    assert (command["kind"], command["task_id"], command["status"]) == ("flow_run", wid, "pending")
    assert json.loads(command["args"]) == {"trigger": "api"} | body
    polled = await api.get(f"/api/v1/commands/{command['id']}", headers=world.auth("viewer"))
    assert polled.status_code == 200 and polled.json()["kind"] == "flow_run"
    hidden = await api.get(f"/api/v1/commands/{command['id']}", headers=world.auth("beta_admin"))
    assert hidden.status_code == 404
    bare = await api.post(f"/api/v1/workflows/{wid}/run", headers=world.auth("operator"))
    assert json.loads(bare.json()["args"]) == {"trigger": "api"}
    bad = await api.post(
        f"/api/v1/workflows/{wid}/run", json={"env": {"1X": "y"}}, headers=world.auth("operator")
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "env"
    unsplit = await api.post(
        f"/api/v1/workflows/{wid}/run",
        json={"params": "--name 'unclosed"},
        headers=world.auth("operator"),
    )
    assert unsplit.status_code == 422 and unsplit.json()["error"]["field"] == "params"
    # The rule whose id equals the workflow's does not list the workflow's command as its own.
    rule = await api.get(f"/api/v1/rules/{a}", headers=world.auth("admin"))
    assert all(c["kind"] != "flow_run" for c in rule.json()["commands"])


async def _flow_run(app: FastAPI, wid: int, sched: int = FLOW_SCHED, **values: Any) -> str:
    runid = flow_runid(wid, sched)
    row = {
        "id": runid,
        "workflow_id": wid,
        "sched_us": sched,
        "trigger": "schedule",
        "status": "running",
        "created_us": sched,
        "updated_us": sched,
    } | values
    async with app.state.engine.begin() as conn:
        await conn.execute(insert(workflow_run).values(**row))
    return runid


async def _node_run(
    app: FastAPI,
    wid: int,
    runid: str,
    task_id: int,
    aid: int,
    status: str,
    *,
    gen: int = 0,
    attempt: int = 0,
    chain: str = "",
    **values: Any,
) -> int:
    sched = node_sched_us(wid, int(runid.split("-")[1]), gen)
    first = chain or f"{task_id}-{sched}-{aid}-0-0"
    return await add_run(
        app.state.engine,
        task_id,
        aid,
        sched_us=sched,
        status=status,
        flow_runid=runid,
        attempt=attempt,
        first_runid=first,
        runid=f"{task_id}-{sched}-{aid}-{attempt}-0",
        trigger="flow",
        **values,
    )


async def test_runs_list_node_states_from_task_process_rows(
    api: httpx.AsyncClient, world: World, app: FastAPI
):
    """Each node's state comes from its runs in the flow run: a retry chain counts by its
    newest attempt, a node on two agents runs until both end, a skipped node shows its reason
    naming the parent, a re-run's older generation is history; newest flow run first."""
    a, b, c, d = await _rules(app, world, "extract", "fetch", "load", "report")
    edges = [(a, c, "success"), (b, c, "success"), (c, d, "success")]
    wid = (await _create(api, world, _body(world, [a, b, c, d], edges)))["id"]
    aid, aid2 = world.ids["agent_a"], await add_agent(app.state.engine, "host-a2", world.alpha)
    old = await _flow_run(
        app, wid, FLOW_SCHED - 86_400_000_000, status="failed", reason="node 1 failed"
    )
    await _node_run(app, wid, old, a, aid, "failed", reason="exit 1")
    await _node_run(
        app,
        wid,
        old,
        c,
        0,
        "skipped",
        reason="parent 1 ('extract') ended failed; the edge runs this node on success",
    )
    new = await _flow_run(app, wid, reruns=json.dumps({str(a): 1}))
    await _node_run(app, wid, new, a, aid, "failed", reason="exit 3")  # generation 0: history
    await _node_run(app, wid, new, a, aid, "success", gen=1)
    await _node_run(app, wid, new, b, aid, "failed", attempt=0, reason="exit 2")
    await _node_run(app, wid, new, b, aid, "success", attempt=1, chain=f"{b}-x-{aid}-0-0")
    await _node_run(app, wid, new, c, aid, "success")
    await _node_run(app, wid, new, c, aid2, "running")

    answer = await api.get(f"/api/v1/workflows/{wid}/runs", headers=world.auth("viewer"))
    assert answer.status_code == 200, answer.text
    listed = answer.json()
    assert [r["id"] for r in listed] == [new, old]
    states = {n["task_id"]: n["state"] for n in listed[0]["nodes"]}
    assert states == {a: "success", b: "failed", c: "running", d: "pending"}
    old_nodes = {n["task_id"]: n for n in listed[1]["nodes"]}
    assert (
        old_nodes[c]["state"] == "skipped" and "'extract') ended failed" in old_nodes[c]["reason"]
    )
    assert old_nodes[a]["reason"] == "exit 1" and old_nodes[b]["state"] == "pending"
    page = await api.get(
        f"/api/v1/workflows/{wid}/runs?before_us={FLOW_SCHED}&limit=5", headers=world.auth("viewer")
    )
    assert [r["id"] for r in page.json()] == [old]

    one = (await api.get(f"/api/v1/workflows/runs/{new}", headers=world.auth("viewer"))).json()
    nodes = {n["task_id"]: n for n in one["nodes"]}
    assert nodes[a]["generation"] == 1 and nodes[a]["earlier_runs"] == 1
    assert [r["status"] for r in nodes[a]["runs"]] == ["success"]
    assert sorted(r["aid"] for r in nodes[c]["runs"]) == sorted([aid, aid2])
    assert one["reruns"] == {str(a): 1} and one["workflow_name"] == "nightly"
    hidden = await api.get(f"/api/v1/workflows/runs/{new}", headers=world.auth("beta_admin"))
    assert hidden.status_code == 404


async def test_rerun_inserts_a_flow_rerun_command_or_is_refused(
    api: httpx.AsyncClient, world: World, app: FastAPI
):
    """Re-run from a node that ended writes a `flow_rerun` command (runid = flow run, task_id
    = node); a node still running, a repeat while one waits, an unknown flow run or a rule
    outside the workflow are refused; viewers may not re-run."""
    a, c = await _rules(app, world, "a", "c")
    wid = (await _create(api, world, _body(world, [a, c], [(a, c, "success")])))["id"]
    runid = await _flow_run(app, wid)
    await _node_run(app, wid, runid, a, world.ids["agent_a"], "failed")
    await _node_run(app, wid, runid, c, 0, "skipped", reason="parent a failed")
    url = f"/api/v1/workflows/runs/{runid}/nodes"
    assert (await api.post(f"{url}/{a}/rerun", headers=world.auth("viewer"))).status_code == 403
    answer = await api.post(f"{url}/{a}/rerun", headers=world.auth("operator"))
    assert answer.status_code == 202, answer.text
    command = answer.json()
    assert (command["kind"], command["runid"], command["task_id"]) == ("flow_rerun", runid, a)
    again = await api.post(f"{url}/{a}/rerun", headers=world.auth("operator"))
    assert again.status_code == 409 and "waits" in again.json()["error"]["reason"]
    running = await _flow_run(app, wid, FLOW_SCHED + 60_000_000)
    await _node_run(app, wid, running, a, world.ids["agent_a"], "running")
    busy = await api.post(
        f"/api/v1/workflows/runs/{running}/nodes/{a}/rerun", headers=world.auth("operator")
    )
    assert busy.status_code == 409 and "still running" in busy.json()["error"]["reason"]
    waiting = await api.post(
        f"/api/v1/workflows/runs/{running}/nodes/{c}/rerun", headers=world.auth("operator")
    )
    assert waiting.status_code == 409 and "not started" in waiting.json()["error"]["reason"]
    unknown = await api.post(
        f"/api/v1/workflows/runs/f{wid}-1/nodes/{a}/rerun", headers=world.auth("operator")
    )
    assert unknown.status_code == 404
    outside = await api.post(f"{url}/{world.ids['rule_a']}/rerun", headers=world.auth("operator"))
    assert outside.status_code == 404
    async with app.state.engine.connect() as conn:
        kinds = (await conn.execute(select(center_command.c.kind))).scalars().all()
    assert kinds == ["flow_rerun"]
