"""Workflow pages: the form (edges as lines), the graph as SVG coloured by a flow run, run now
and re-run buttons with CSRF, and the rule page's links to its workflows."""

from __future__ import annotations

import json
import re

from fastapi import FastAPI
from sqlalchemy import insert, select

from center.dag import flow_runid, node_sched_us
from center.tables import center_command, workflow, workflow_edge, workflow_node, workflow_run
from tests.admin.seed import World, add_rule, add_run
from tests.admin.test_pages import _csrf, _session_client

SCHED = 1_800_000_000_000_000


async def test_create_through_the_form_and_see_the_graph(app: FastAPI, world: World):
    """The form stores the ticked rules, their join and the edge lines; the page draws one box
    per step and one arrow per edge; a bad line comes back as a 422 naming `edges`, the form
    keeping what was typed."""
    engine = app.state.engine
    a = await add_rule(engine, world.alpha, [], name="extract", rule="")
    b = await add_rule(engine, world.alpha, [], name="fetch", rule="")
    c = await add_rule(engine, world.alpha, [], name="load", rule="")
    client = await _session_client(app, world, "admin")
    async with client:
        csrf = await _csrf(client, "/workflows/new")
        form = {
            "csrf": csrf,
            "gid": str(world.alpha),
            "name": "etl",
            "rule": "0 3 * * *",
            "timezone": "UTC",
            "overlap": "queue",
            "misfire": "skip",
            "misfire_window_s": "600",
            "status": "1",
            f"join-{c}": "any",
            "edges": "extract -> load\nfetch -> lode failure",
        }
        form["nodes"] = [str(t) for t in (a, b, c)]  # type: ignore[assignment]
        bad = await client.post("/workflows/new", data=form)
        assert bad.status_code == 422
        assert "line 2: &#39;lode&#39; is not a node" in bad.text
        assert 'class="invalid"' in bad.text and "fetch -&gt; lode failure" in bad.text
        form["edges"] = "extract -> load\nfetch -> load failure"
        made = await client.post("/workflows/new", data=form)
        assert made.status_code == 303, made.text
        page = await client.get(made.headers["location"])
        assert page.status_code == 200
        for task_id in (a, b, c):
            assert f'id="node-{task_id}"' in page.text
        assert page.text.count('<path class="edge when-') == 2
        assert 'class="edge-label when-failure"' in page.text
        assert "No flow runs yet." in page.text
        edit = await client.get(made.headers["location"] + "/edit")
        assert "extract -&gt; load success" in edit.text and "fetch -&gt; load failure" in edit.text
        rule_page = await client.get(f"/rules/{a}")
        assert re.search(r'id="rule-workflows"><a href="/workflows/\d+">etl</a>', rule_page.text)
    async with engine.connect() as conn:
        row = (await conn.execute(select(workflow))).mappings().one()
    assert (row["overlap"], row["misfire_window_s"], row["rule"]) == ("queue", 600, "0 3 * * *")


async def test_a_flow_run_colours_the_nodes_and_offers_a_rerun(app: FastAPI, world: World):
    """With a flow run chosen (the newest by default, or ?run=), each box has its node's state
    as a class and links to the node's run; run now and re-run post commands with CSRF."""
    engine = app.state.engine
    aid = world.ids["agent_a"]
    a = await add_rule(engine, world.alpha, [aid], name="extract", rule="")
    c = await add_rule(engine, world.alpha, [aid], name="load", rule="")
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(workflow).values(gid=world.alpha, name="etl", create_time=1, update_time=1)
        )
        wid = int(result.inserted_primary_key[0])  # type: ignore[index]
        await conn.execute(
            insert(workflow_node),
            [
                {"workflow_id": wid, "task_id": a, "join": "all"},
                {"workflow_id": wid, "task_id": c, "join": "all"},
            ],
        )
        await conn.execute(
            insert(workflow_edge).values(
                workflow_id=wid, parent_task_id=a, child_task_id=c, when="success"
            )
        )
        runid = flow_runid(wid, SCHED)
        await conn.execute(
            insert(workflow_run).values(
                id=runid, workflow_id=wid, sched_us=SCHED, status="failed", reason="node failed"
            )
        )
    sched = node_sched_us(wid, SCHED)
    run_a = await add_run(
        engine,
        a,
        aid,
        sched_us=sched,
        status="failed",
        flow_runid=runid,
        runid=f"{a}-{sched}-{aid}-0-0",
    )
    await add_run(
        engine,
        c,
        0,
        sched_us=sched,
        status="skipped",
        flow_runid=runid,
        runid=f"{c}-{sched}-0-0-0",
        reason="parent 1 ('extract') ended failed",
    )
    client = await _session_client(app, world, "operator")
    async with client:
        page = await client.get(f"/workflows/{wid}")
        assert page.status_code == 200
        assert f'class="node st-failed" id="node-{a}"' in page.text
        assert f'class="node st-skipped" id="node-{c}"' in page.text
        assert f'href="/runs/{run_a}"' in page.text
        assert "ended failed" in page.text
        assert page.text.count("Re-run from here") == 2
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        rerun = await client.post(f"/workflows/runs/{runid}/nodes/{a}/rerun", data={"csrf": csrf})
        assert (
            rerun.status_code == 303
            and rerun.headers["location"] == f"/workflows/{wid}?run={runid}"
        )
        forged = await client.post(f"/workflows/{wid}/run", data={"csrf": "nope"})
        assert forged.status_code == 403
        ran = await client.post(f"/workflows/{wid}/run", data={"csrf": csrf})
        assert ran.status_code == 303
        unknown = await client.get(f"/workflows/{wid}?run=f{wid}-1")
        assert unknown.status_code == 404
        assert (
            "Edit"
            not in (await client.get(f"/workflows/{wid}")).text.split("<main>")[1].split("</p>")[0]
        )
    async with engine.connect() as conn:
        rows = (
            (await conn.execute(select(center_command).order_by(center_command.c.id)))
            .mappings()
            .all()
        )
    assert [(r["kind"], r["task_id"], r["runid"]) for r in rows] == [
        ("flow_rerun", a, runid),
        ("flow_run", wid, ""),
    ]
    assert json.loads(rows[1]["args"]) == {"trigger": "manual"}
