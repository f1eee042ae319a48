"""Stored XSS, in a real headless Chromium: every field a user or an agent sets is shown as text."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import BrowserContext, Dialog, Page, async_playwright, expect
from sqlalchemy import select

from center.tables import agents
from tests.admin.seed import PASSWORD, World
from tests.admin.server import running_admin
from tests.integration.cluster import SECRET, running_center
from tests.security.payloads import (
    both,
    plant_alerts_and_users,
    plant_rule_and_agent,
    plant_runs,
    plant_through_api,
    register_hostile_agent,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STEP_MS = 15_000
# Elements and attributes that only an injection would put on a page: inline scripts (the
# admin has none), event handlers, javascript: URLs, the payloads' own <img src=x>.
FIND_INJECTED = """() => {
  const bad = [];
  for (const el of document.querySelectorAll("*")) {
    if (el.tagName === "SCRIPT" && !el.getAttribute("src")) bad.push("inline script");
    if (el.tagName === "IMG" && el.getAttribute("src") === "x") bad.push("img src=x");
    for (const a of el.attributes) {
      if (a.name.startsWith("on")) bad.push(el.tagName + " " + a.name);
      const url = ["href", "src", "action", "formaction"].includes(a.name);
      if (url && /^\\s*javascript:/i.test(a.value)) bad.push(el.tagName + " " + a.name);
    }
  }
  return bad;
}"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None and os.environ.get("CI") != "true",
        reason=f"no {CHROMIUM}",
    ),
]


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """Chromium with the page's CSP bypassed: only escaping stands between a payload and a
    dialog (the CSP is checked on its own, from the headers)."""
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            bypass_csp=True,
        )
        context.set_default_timeout(STEP_MS)
        try:
            yield context
        finally:
            await context.close()


async def _plant_everything(db_url: str, app: FastAPI, api: httpx.AsyncClient, w: World) -> int:
    """Every hostile value in place; returns the id of the agent that registered itself."""
    engine = app.state.engine
    await plant_rule_and_agent(engine, w)
    await plant_runs(engine, w)
    await plant_alerts_and_users(engine, w)
    await plant_through_api(api, w)
    async with running_center(db_url) as center:
        await register_hostile_agent(center.registration_port, SECRET)
    async with engine.connect() as conn:
        query = select(agents.c.id).where(agents.c.name == both("agent"))
        return int((await conn.execute(query)).scalar_one())


def _pages(w: World, hostile_agent: int) -> list[str]:
    ids = w.ids
    return [
        "/",
        "/rules",
        f"/rules/{ids['rule_a']}",
        f"/rules/{ids['rule_a']}/edit",
        f"/rules/{ids['api_rule']}",
        "/runs",
        f"/runs/{ids['run_done']}",
        "/agents",
        f"/agents/{ids['agent_a']}",
        f"/agents/{hostile_agent}",
        "/groups",
        f"/groups/{w.alpha}",
        "/users",
        f"/users/{ids['evil_user']}",
        "/audit",
        "/alerts",
        f"/alerts/{ids['channel_a']}",
    ]


async def _log_in(page: Page, base: str) -> None:
    """Through the form, with a javascript: URL as where to go next: it is not followed."""
    await page.goto(f"{base}/login?next=javascript:alert(%22next%22)")
    await page.fill("input[name=username]", "root")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("#me")).to_have_text("root")
    assert page.url == f"{base}/"


async def _check_page(page: Page, url: str) -> None:
    answer = await page.goto(url)
    assert answer is not None and answer.status == 200, url
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, url
    assert await page.evaluate(FIND_INJECTED) == [], url
    assert 'alert("' in await page.locator("main").inner_text(), f"{url}: payload not shown"


async def _check_live_output(page: Page, base: str, run_id: int) -> None:
    """A running run's page appends the live chunks (server-sent events) as text."""
    await page.goto(f"{base}/runs/{run_id}")
    await expect(page.locator("#output")).to_contain_text('<script>alert("live")</script>')
    assert await page.evaluate(FIND_INJECTED) == []


async def _check_preview(page: Page, base: str, task_id: int) -> None:
    """The rule form's live preview shows a hostile expression's error as text."""
    await page.goto(f"{base}/rules/{task_id}/edit")
    await page.fill("#f-rule", both("preview"))
    await expect(page.locator("#preview-error")).to_contain_text('alert("')
    assert await page.evaluate(FIND_INJECTED) == []


async def test_no_stored_payload_runs_in_a_browser(
    db_url: str, app: FastAPI, api: httpx.AsyncClient, world: World, browser: BrowserContext
):
    """Payloads in rules, runs, live output, agents (their own registration too), groups, users,
    alerts and the audit log: no dialog fires, no element is injected, the text is shown."""
    hostile_agent = await _plant_everything(db_url, app, api, world)
    dialogs: list[str] = []
    async with running_admin(app) as base, asyncio.timeout(120):
        page = await browser.new_page()

        async def dismiss(dialog: Dialog) -> None:
            dialogs.append(f"{dialog.message} on {page.url}")
            await dialog.dismiss()

        page.on("dialog", dismiss)
        await _log_in(page, base)
        for path in _pages(world, hostile_agent):
            await _check_page(page, base + path)
            assert dialogs == [], path
        await _check_live_output(page, base, world.ids["run_a"])
        await _check_preview(page, base, world.ids["rule_a"])
        await page.close()
    assert dialogs == []
