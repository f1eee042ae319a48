"""Workflows end to end: made and driven through the API, run by a real center and agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from protocol.vocabulary import FlowStatus
from tests.admin.seed import World
from tests.integration.cluster import approve_agent, poll, running_agent, running_center

pytestmark = pytest.mark.timeout(120)
ECHO_FLOW = 'echo "$UNITEDCRON_FLOW_RUNID"'


async def _rule(api: httpx.AsyncClient, world: World, aid: int, name: str, execute: str) -> int:
    body = {
        "gid": world.alpha,
        "name": name,
        "rule": "",
        "execute": execute,
        "shell": True,
        "run_user": "nobody",
        "agents": [aid],
    }
    answer = await api.post("/api/v1/rules", json=body, headers=world.auth("admin"))
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


async def _ended(api: httpx.AsyncClient, world: World, wid: int, count: int) -> Any:
    answer = await api.get(f"/api/v1/workflows/{wid}/runs", headers=world.auth("viewer"))
    runs = [r for r in answer.json() if r["status"] not in ("running", "queued")]
    return runs[0] if len(runs) >= count else None


async def _state(api: httpx.AsyncClient, world: World, run_id: str, status: str) -> Any:
    answer = await api.get(f"/api/v1/workflows/runs/{run_id}", headers=world.auth("viewer"))
    return answer.json() if answer.json()["status"] == status else None


async def test_a_workflow_through_the_api_joins_skips_and_reruns(
    db_url: str, app: Any, api: httpx.AsyncClient, world: World, tmp_path: Path
):
    """A→C, B→C: C runs once after both with one flow run id; when A fails, C is skipped
    naming A; fixed, a re-run from A runs A and C again in the same flow run."""
    engine = app.state.engine
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port, name="flow-agent"),
    ):
        aid = await approve_agent(engine, "flow-agent", world.alpha)
        a = await _rule(api, world, aid, "A", ECHO_FLOW)
        b = await _rule(api, world, aid, "B", "sleep 1; " + ECHO_FLOW)
        c = await _rule(api, world, aid, "C", ECHO_FLOW)
        body = {
            "gid": world.alpha,
            "name": "join",
            "nodes": [{"task_id": t} for t in (a, b, c)],
            "edges": [{"parent_task_id": p, "child_task_id": c} for p in (a, b)],
        }
        made = await api.post("/api/v1/workflows", json=body, headers=world.auth("admin"))
        assert made.status_code == 201, made.text
        wid = made.json()["id"]
        run = await api.post(f"/api/v1/workflows/{wid}/run", headers=world.auth("operator"))
        assert run.status_code == 202, run.text
        flow = await poll(lambda: _ended(api, world, wid, 1), 30)
        assert flow["status"] == FlowStatus.SUCCESS, flow
        nodes = {n["task_id"]: n for n in flow["nodes"]}
        detail = await _state(api, world, flow["id"], FlowStatus.SUCCESS)
        runs = {n["task_id"]: n["runs"] for n in detail["nodes"]}
        assert all(len(runs[t]) == 1 for t in (a, b, c)), runs
        assert runs[c][0]["start"] >= max(runs[a][0]["end"], runs[b][0]["end"])
        assert {nodes[t]["state"] for t in (a, b, c)} == {"success"}

        broken = {"execute": "exit 3"}
        edit = await api.patch(f"/api/v1/rules/{a}", json=broken, headers=world.auth("admin"))
        assert edit.status_code == 200, edit.text
        await poll(lambda: _loaded(center, a, "exit 3"), 10)
        await api.post(f"/api/v1/workflows/{wid}/run", headers=world.auth("operator"))
        failed = await poll(lambda: _ended(api, world, wid, 2), 30)
        assert failed["status"] == FlowStatus.FAILED
        skipped = {n["task_id"]: n for n in failed["nodes"]}[c]
        assert (
            skipped["state"] == "skipped" and f"parent {a} ('A') ended failed" in skipped["reason"]
        )

        fixed = {"execute": ECHO_FLOW}
        await api.patch(f"/api/v1/rules/{a}", json=fixed, headers=world.auth("admin"))
        await poll(lambda: _loaded(center, a, ECHO_FLOW), 10)
        url = f"/api/v1/workflows/runs/{failed['id']}/nodes/{a}/rerun"
        rerun = await api.post(url, headers=world.auth("operator"))
        assert rerun.status_code == 202, rerun.text
        again = await poll(lambda: _state(api, world, failed["id"], FlowStatus.SUCCESS), 30)
        [c_run] = {n["task_id"]: n["runs"] for n in again["nodes"]}[c]
        full = await api.get(f"/api/v1/runs/{c_run['id']}", headers=world.auth("viewer"))
    states = {n["task_id"]: (n["state"], n["generation"]) for n in again["nodes"]}
    assert states == {a: ("success", 1), b: ("success", 0), c: ("success", 1)}
    assert full.json()["result"] == f"{failed['id']}\n"  # UNITEDCRON_FLOW_RUNID


async def _loaded(center: Any, task_id: int, execute: str) -> bool:
    rule = center.rulebook.rules.get(task_id)
    return rule is not None and rule.execute == execute
