"""Workflows with a real center and a real agent: joins, skips naming the parent, re-runs, the
flow run id in every node's environment, schedules with their overlap policy."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center.service import CenterService
from center.tables import (
    center_command,
    task_process,
    workflow,
    workflow_edge,
    workflow_node,
    workflow_run,
)
from protocol import statuses
from protocol.vocabulary import CommandKind, FlowStatus
from tests.integration.cluster import (
    add_command,
    add_group,
    add_rule,
    approve_agent,
    command_done,
    edit_rule,
    now_us,
    poll,
    running_agent,
    running_center,
)

pytestmark = pytest.mark.timeout(120)
ECHO_FLOW = 'echo "$UNITEDCRON_FLOW_RUNID"'


async def add_workflow(
    engine: AsyncEngine,
    gid: int,
    nodes: dict[int, str],
    edges: list[tuple[int, int, str]],
    **values: Any,
) -> int:
    """What the admin writes: the workflow row, its nodes and its edges."""
    stamp = now_us()
    row = {"gid": gid, "name": "flow", "rule": "", "create_time": stamp, "update_time": stamp}
    async with engine.begin() as conn:
        result = await conn.execute(insert(workflow).values(**(row | values)))
        wid = int(result.inserted_primary_key[0])  # type: ignore[index]
        for task_id, join in nodes.items():
            await conn.execute(
                insert(workflow_node).values(workflow_id=wid, task_id=task_id, join=join)
            )
        for parent, child, when in edges:
            await conn.execute(
                insert(workflow_edge).values(
                    workflow_id=wid, parent_task_id=parent, child_task_id=child, when=when
                )
            )
    return wid


async def flow_runs(engine: AsyncEngine, wid: int) -> list[Any]:
    query = select(workflow_run).where(workflow_run.c.workflow_id == wid)
    async with engine.connect() as conn:
        return list((await conn.execute(query.order_by(workflow_run.c.sched_us))).mappings())


async def node_runs(engine: AsyncEngine, flow_runid: str) -> dict[int, list[Any]]:
    query = select(task_process).where(task_process.c.flow_runid == flow_runid)
    out: dict[int, list[Any]] = {}
    async with engine.connect() as conn:
        for row in (await conn.execute(query.order_by(task_process.c.sched_us))).mappings():
            out.setdefault(row["task_id"], []).append(row)
    return out


async def ended_flow(engine: AsyncEngine, wid: int) -> Any:
    runs = await flow_runs(engine, wid)
    return runs[-1] if runs and runs[-1]["status"] not in ("running", "queued") else None


async def run_flow(engine: AsyncEngine, wid: int) -> str:
    command_id = await add_command(engine, CommandKind.FLOW_RUN, task_id=wid)
    done = await poll(lambda: command_done(engine, command_id), 15)
    assert done["status"] == "done", done["result"]
    return str(done["result"])


async def test_join_waits_for_both_parents_and_a_failure_skips_naming_the_parent(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A→C, B→C on success: C starts once, after A and B ended, all with one flow run id. When
    A fails, C is skipped naming A; a re-run from A (fixed) then runs A and C again."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        gid = await add_group(engine)
        aid = await approve_agent(engine, "agent-1", gid)
        a = await add_rule(engine, [aid], gid=gid, name="A", rule="", shell=1, execute=ECHO_FLOW)
        b = await add_rule(engine, [aid], gid=gid, name="B", rule="", execute="/bin/sleep 1")
        c = await add_rule(engine, [aid], gid=gid, name="C", rule="", shell=1, execute=ECHO_FLOW)
        edges = [(a, c, "success"), (b, c, "success")]
        wid = await add_workflow(engine, gid, {a: "all", b: "all", c: "all"}, edges)
        await run_flow(engine, wid)
        flow = await poll(lambda: ended_flow(engine, wid), 30)
        nodes = await node_runs(engine, flow["id"])
        assert flow["status"] == FlowStatus.SUCCESS, flow
        assert [len(nodes[t]) for t in (a, b, c)] == [1, 1, 1]
        [ra], [rb], [rc] = nodes[a], nodes[b], nodes[c]
        assert rc["start"] >= max(ra["end"], rb["end"])
        assert ra["result"] == rc["result"] == f"{flow['id']}\n"
        assert {r["trigger"] for r in (ra, rb, rc)} == {"flow"}

        await edit_rule(engine, a, execute="exit 3")
        await poll(lambda: _loaded(center, a, "exit 3"), 10)
        await run_flow(engine, wid)
        failed = await poll(lambda: ended_flow(engine, wid), 30)
        assert failed["id"] != flow["id"] and failed["status"] == FlowStatus.FAILED
        assert "'A'" in failed["reason"]
        nodes = await node_runs(engine, failed["id"])
        [skipped] = nodes[c]
        assert skipped["status"] == statuses.SKIPPED
        assert f"parent {a} ('A') ended failed" in skipped["reason"]

        await edit_rule(engine, a, execute=ECHO_FLOW)
        await poll(lambda: _loaded(center, a, ECHO_FLOW), 10)
        command_id = await add_command(
            engine, CommandKind.FLOW_RERUN, task_id=a, runid=failed["id"]
        )
        assert (await poll(lambda: command_done(engine, command_id), 15))["status"] == "done"
        again = await poll(lambda: _status(engine, failed["id"], FlowStatus.SUCCESS), 30)
        nodes = await node_runs(engine, failed["id"])
    assert again["reruns"]
    assert [r["status"] for r in nodes[a]] == [statuses.FAILED, statuses.SUCCESS]
    assert [r["status"] for r in nodes[c]] == [statuses.SKIPPED, statuses.SUCCESS]
    assert [r["status"] for r in nodes[b]] == [statuses.SUCCESS]  # not re-run: not after A


async def test_any_join_and_failure_edges(db_url: str, engine: AsyncEngine, tmp_path: Path):
    """A node marked `any` starts at its first parent that ended as asked; a `failure` edge
    runs its child when the parent failed, and the flow run is failed all the same."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        gid = await add_group(engine)
        aid = await approve_agent(engine, "agent-1", gid)
        fast = await add_rule(engine, [aid], gid=gid, name="fast", rule="", execute="/bin/true")
        slow = await add_rule(engine, [aid], gid=gid, name="slow", rule="", execute="/bin/sleep 2")
        first = await add_rule(engine, [aid], gid=gid, name="first", rule="", execute="/bin/true")
        bad = await add_rule(engine, [aid], gid=gid, name="bad", rule="", execute="/bin/false")
        handler = await add_rule(engine, [aid], gid=gid, name="h", rule="", execute="/bin/true")
        nodes = {fast: "all", slow: "all", first: "any", bad: "all", handler: "all"}
        edges = [
            (fast, first, "success"),
            (slow, first, "success"),
            (bad, handler, "failure"),
        ]
        wid = await add_workflow(engine, gid, nodes, edges)
        await run_flow(engine, wid)
        flow = await poll(lambda: ended_flow(engine, wid), 30)
        runs = await node_runs(engine, flow["id"])
    [f], [s], [one] = runs[fast], runs[slow], runs[first]
    assert one["start"] >= f["end"] and one["start"] < s["end"]  # did not wait for `slow`
    assert runs[handler][0]["status"] == statuses.SUCCESS
    assert flow["status"] == FlowStatus.FAILED and "'bad'" in flow["reason"]


async def test_a_scheduled_flow_obeys_its_overlap_policy(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A workflow every second whose flow runs take ~2.5 s: `skip` records the fires that
    found one still going, and never runs two at once."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        gid = await add_group(engine)
        aid = await approve_agent(engine, "agent-1", gid)
        step = await add_rule(engine, [aid], gid=gid, name="s", rule="", execute="/bin/sleep 2.5")
        wid = await add_workflow(engine, gid, {step: "all"}, [], rule="* * * * * *", overlap="skip")
        await poll(lambda: _count(engine, wid, FlowStatus.SUCCESS, 2), 30)
        await _pause(engine, wid)
        runs = await flow_runs(engine, wid)
    skipped = [r for r in runs if r["status"] == FlowStatus.SKIPPED]
    assert skipped and all("still going" in r["reason"] for r in skipped)
    started = [r for r in runs if r["status"] != FlowStatus.SKIPPED]
    spans = sorted((r["sched_us"], r["end_us"] or now_us()) for r in started)
    assert all(b[0] >= a[1] - 5_000 for a, b in itertools.pairwise(spans)), spans


async def _loaded(center: CenterService, task_id: int, execute: str) -> bool:
    """The center has read the rule's edit (the rules poll), so the next run uses it."""
    rule = center.rulebook.rules.get(task_id)
    return rule is not None and rule.execute == execute


async def _status(engine: AsyncEngine, flow_runid: str, status: str) -> Any:
    query = select(workflow_run).where(workflow_run.c.id == flow_runid)
    async with engine.connect() as conn:
        row = (await conn.execute(query)).mappings().one()
    return row if row["status"] == status else None


async def _count(engine: AsyncEngine, wid: int, status: str, at_least: int) -> bool:
    return sum(r["status"] == status for r in await flow_runs(engine, wid)) >= at_least  # type: ignore[no-any-return]


async def _pause(engine: AsyncEngine, wid: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(workflow).where(workflow.c.id == wid).values(status=0, update_time=now_us())
        )


async def test_a_new_leader_carries_a_flow_run_on(db_url: str, engine: AsyncEngine, tmp_path: Path):
    """The center stops while A runs; the next one (a new epoch) starts C once A has ended, and
    nothing starts twice: the flow run is recomputed from the store with the same ids."""
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port, name="agent-1"),
    ):
        gid = await add_group(engine)
        aid = await approve_agent(engine, "agent-1", gid)
        a = await add_rule(engine, [aid], gid=gid, name="A", rule="", execute="/bin/sleep 2")
        c = await add_rule(engine, [aid], gid=gid, name="C", rule="", shell=1, execute=ECHO_FLOW)
        wid = await add_workflow(engine, gid, {a: "all", c: "all"}, [(a, c, "success")])
        await run_flow(engine, wid)
        [flow] = await flow_runs(engine, wid)
        await poll(lambda: _node_status(engine, flow["id"], a, statuses.RUNNING), 15)
        await center.stop()
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port, name="agent-1"),
    ):
        done = await poll(lambda: _status(engine, flow["id"], FlowStatus.SUCCESS), 30)
        nodes = await node_runs(engine, flow["id"])
    assert done["epoch"] >= 1
    assert [r["status"] for r in nodes[a]] == [statuses.SUCCESS]
    assert [r["result"] for r in nodes[c]] == [f"{flow['id']}\n"]


async def _node_status(engine: AsyncEngine, flow_runid: str, task_id: int, status: str) -> bool:
    rows = (await node_runs(engine, flow_runid)).get(task_id, [])
    return any(r["status"] == status for r in rows)


async def test_fires_missed_with_no_leader_follow_the_misfire_policy(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A workflow every second, with no center for ~3 s: `skip` records each missed fire as a
    skipped flow run saying so, then the schedule goes on."""
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port),
    ):
        gid = await add_group(engine)
        aid = await approve_agent(engine, "agent-1", gid)
        step = await add_rule(engine, [aid], gid=gid, name="s", rule="", execute="/bin/true")
        wid = await add_workflow(
            engine, gid, {step: "all"}, [], rule="* * * * * *", overlap="parallel"
        )
        await poll(lambda: _count(engine, wid, FlowStatus.SUCCESS, 1), 15)
        await center.stop()
    stopped_us = now_us()
    await poll(lambda: _later(stopped_us + 3_000_000), 10)
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port),
    ):
        await poll(lambda: _count(engine, wid, FlowStatus.SUCCESS, 3), 20)
        runs = await flow_runs(engine, wid)
    missed = [r for r in runs if r["sched_us"] > stopped_us and r["sched_us"] < stopped_us + 3e6]
    assert len(missed) >= 2
    assert all(r["status"] == FlowStatus.SKIPPED and r["trigger"] == "misfire" for r in missed)
    assert all(r["reason"].startswith("missed") for r in missed)
    assert len({r["sched_us"] for r in runs}) == len(runs)


async def _later(when_us: int) -> bool:
    return now_us() >= when_us


async def test_a_flow_run_now_gives_its_params_to_the_nodes_that_allow_them(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """Run now with params and env: a node whose rule allows parameters gets both; the others
    run as saved."""
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port),
    ):
        gid = await add_group(engine)
        aid = await approve_agent(engine, "agent-1", gid)
        yes = await add_rule(
            engine, [aid], gid=gid, name="yes", rule="", execute="/bin/echo", allow_params=1
        )
        no = await add_rule(engine, [aid], gid=gid, name="no", rule="", execute="/bin/echo")
        wid = await add_workflow(engine, gid, {yes: "all", no: "all"}, [])
        args = {"params": "a 'b c'", "env": {"GREETING": "hi"}}
        async with engine.begin() as conn:
            command = await conn.execute(
                insert(center_command).values(
                    kind=CommandKind.FLOW_RUN,
                    task_id=wid,
                    user_id=1,
                    args=json.dumps(args),
                    created_us=now_us(),
                )
            )
        command_id = int(command.inserted_primary_key[0])  # type: ignore[index]
        assert (await poll(lambda: command_done(engine, command_id), 15))["status"] == "done"
        flow = await poll(lambda: ended_flow(engine, wid), 30)
        nodes = await node_runs(engine, flow["id"])
    assert nodes[yes][0]["result"] == "a b c\n" and nodes[yes][0]["params"] == "a 'b c'"
    assert nodes[no][0]["result"] == "\n" and not nodes[no][0]["params"]
