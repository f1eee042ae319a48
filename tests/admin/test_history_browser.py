"""In headless Chromium: a rule's versions, a diff of two, and a rollback (with screenshots)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from playwright.async_api import BrowserContext, expect

from tests.admin.seed import add_agent, add_group, add_user
from tests.admin.server import running_admin
from tests.admin.test_browser import _log_in, _shot, browser, pytestmark

__all__ = ["browser", "pytestmark"]


async def test_history_diff_and_rollback_in_a_browser(app: FastAPI, browser: BrowserContext):
    """An admin opens a rule's versions, compares two field by field, rolls back to v1 and
    sees the rollback as the newest version."""
    engine = app.state.engine
    gid = await add_group(engine, "web")
    aid = await add_agent(engine, "web-1", gid)
    _, token = await add_user(engine, "root", superadmin=True)
    auth = {"Authorization": f"Bearer {token}"}
    async with running_admin(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10, headers=auth) as http:
            body = {
                "gid": gid,
                "name": "report",
                "rule": "0 6 * * *",
                "execute": "/bin/report",
                "run_user": "nobody",
                "agents": [aid],
            }
            task_id = (await http.post("/api/v1/rules", json=body)).json()["id"]
            change = {"rule": "30 6 * * 1-5", "execute": "/bin/report --weekly", "retries": 2}
            assert (await http.patch(f"/api/v1/rules/{task_id}", json=change)).is_success
        page = await browser.new_page()
        await _log_in(page, base, "root")
        await page.goto(f"{base}/rules/{task_id}")
        await page.click("#rule-history")
        await expect(page.locator("tr.version")).to_have_count(2)
        await expect(page.locator("#v2")).to_contain_text("changed execute, retries, rule")
        await _shot(page, "rule_history")
        await page.click("#compare button[type=submit]")
        await expect(page.locator("tr.change")).to_have_count(3)
        await expect(page.locator("tr.change[data-field=execute] .new")).to_have_text(
            "/bin/report --weekly"
        )
        await _shot(page, "rule_diff")
        page.on("dialog", lambda dialog: dialog.accept())
        await page.click("button:has-text('Roll back to v1')")
        await expect(page.locator("#rolled-back")).to_contain_text("version 3")
        await expect(page.locator("#v3")).to_contain_text("rollback to v1")
        await page.goto(f"{base}/rules/{task_id}")
        await expect(page.locator("code.cmd").first).to_have_text("/bin/report")
