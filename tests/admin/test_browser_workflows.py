"""In headless Chromium: create a workflow through the form, see its graph drawn as SVG, and see
the nodes coloured by a flow run whose node runs the test writes."""

from __future__ import annotations

import re

from fastapi import FastAPI
from playwright.async_api import BrowserContext, expect
from sqlalchemy import insert

from center.dag import flow_runid, node_sched_us
from center.tables import workflow_run
from tests.admin import test_browser as chromium
from tests.admin.seed import add_agent, add_group, add_rule, add_run, add_user, now_us
from tests.admin.server import running_admin
from tests.admin.test_browser import _log_in, _shot

# The admin browser tests' Chromium fixture and marks, shared.
browser = chromium.browser
pytestmark = chromium.pytestmark

# Colours of the stylesheet's node states (style.css: svg.dag .node.st-… rect).
FILLS = {
    "success": "rgb(227, 244, 234)",
    "failed": "rgb(253, 236, 234)",
    "running": "rgb(230, 239, 255)",
}


async def test_create_a_workflow_and_see_a_flow_run_on_its_graph(
    app: FastAPI, browser: BrowserContext
):
    """An admin ticks three rules, types the edges A → C, B → C (C joins `all`), saves; the page
    shows three boxes and two arrows. With a flow run where A succeeded, B failed and C was
    skipped naming B, the boxes take those states' colours and C's reason is shown."""
    engine = app.state.engine
    gid = await add_group(engine, "etl")
    aid = await add_agent(engine, "etl-1", gid)
    ids = {
        n: await add_rule(engine, gid, [aid], name=n, rule="") for n in ("extract", "fetch", "load")
    }
    await add_rule(engine, gid, [aid], name="a daemon", is_daemon=1)
    await add_user(engine, "root", superadmin=True)
    async with running_admin(app) as base:
        page = await browser.new_page()
        await _log_in(page, base, "root")
        await page.goto(f"{base}/workflows")
        await page.click("#new-workflow")
        await page.select_option("#f-gid", str(gid))
        await page.fill("#f-name", "nightly etl")
        await page.fill("#f-rule", "0 2 * * *")
        await page.fill("#f-timezone", "Asia/Shanghai")
        await expect(page.locator("#nodes-choice")).not_to_contain_text("a daemon")
        for task_id in ids.values():
            await page.check(f"#node-{task_id}")
        await page.fill("#f-edges", "extract -> load\nfetch -> load success")
        await _shot(page, "workflow_form")
        await page.click("#save-workflow")
        await expect(page.locator("#workflow-name")).to_have_text("nightly etl")
        await expect(page.locator("svg#dag g.node")).to_have_count(3)
        await expect(page.locator("svg#dag path.edge")).to_have_count(2)
        await expect(page.locator(f"#node-{ids['load']} .node-name")).to_have_text("load")
        workflow_id = int(page.url.rsplit("/", 1)[1])

        sched = now_us() // 1_000_000 * 1_000_000
        runid = flow_runid(workflow_id, sched)
        async with engine.begin() as conn:
            await conn.execute(
                insert(workflow_run).values(
                    id=runid,
                    workflow_id=workflow_id,
                    sched_us=sched,
                    status="failed",
                    trigger="manual",
                    reason="node 2 ('fetch') failed",
                    created_us=sched,
                )
            )
        node_sched = node_sched_us(workflow_id, sched)
        for name, aid_, status, reason in (
            ("extract", aid, "success", ""),
            ("fetch", aid, "failed", "exit 1"),
            (
                "load",
                0,
                "skipped",
                "parent 2 ('fetch') ended failed; the edge runs this node on success",
            ),
        ):
            task_id = ids[name]
            await add_run(
                engine,
                task_id,
                aid_,
                sched_us=node_sched,
                status=status,
                reason=reason,
                flow_runid=runid,
                runid=f"{task_id}-{node_sched}-{aid_}-0-0",
                trigger="flow",
            )
        await page.goto(f"{base}/workflows/{workflow_id}")
        await expect(page.locator("#chosen-run")).to_have_text(runid)
        for name, state in (("extract", "success"), ("fetch", "failed"), ("load", "skipped")):
            node = page.locator(f"#node-{ids[name]}")
            await expect(node).to_have_attribute("data-state", state)
            await expect(node.locator(".node-state")).to_contain_text(state)
        for name, state in (("extract", "success"), ("fetch", "failed")):
            fill = await page.locator(f"#node-{ids[name]} rect").evaluate(
                "r => getComputedStyle(r).fill"
            )
            assert fill == FILLS[state]
        await expect(page.locator("#flow-nodes")).to_contain_text("('fetch') ended failed")
        await expect(page.locator("#flow-nodes button", has_text="Re-run from here")).to_have_count(
            3
        )
        await _shot(page, "workflow")
        # The node's run link leads to the run's page.
        await page.locator(f"#node-{ids['fetch']} a.node-run").click()
        await expect(page).to_have_url(re.compile(r"/runs/\d+$"))
