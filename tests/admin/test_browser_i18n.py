"""In headless Chromium: a zh-CN user sees every page in Chinese (no English text of the
catalog left), an English user in English; screenshots of both in artifacts/screenshots/i18n."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Page, async_playwright, expect
from sqlalchemy import update

from center.tables import admin_user
from i18n.catalogs import catalog
from i18n.languages import Language
from tests.admin.seed import PASSWORD, World, add_run, build_world, now_us
from tests.admin.server import running_admin
from tests.admin.test_browser import CHROMIUM, CHROMIUM_ARGS, STEP_MS
from tests.i18n.bare_text import ALLOWED

SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots" / "i18n"
CJK = re.compile(r"[\u4e00-\u9fff]")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None and os.environ.get("CI") != "true",
        reason=f"no {CHROMIUM}",
    ),
]

# The visible texts of a page, and the attributes people read, outside code and data cells.
VISIBLE_TEXT_JS = """() => {
  const skip = new Set(["SCRIPT", "STYLE", "CODE", "PRE", "KBD", "SAMP", "TEXTAREA"]);
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    let el = node.parentElement, hidden = false;
    for (let e = el; e; e = e.parentElement) { if (skip.has(e.tagName)) { hidden = true; break; } }
    const text = node.textContent.replace(/\\s+/g, " ").trim();
    if (!hidden && text) out.push(text);
  }
  for (const el of document.querySelectorAll("[title],[placeholder],[aria-label],[data-confirm]")) {
    for (const name of ["title", "placeholder", "aria-label", "data-confirm"]) {
      const value = el.getAttribute(name);
      if (value) out.push(value.trim());
    }
  }
  return out;
}"""


@pytest.fixture
def empty_db_url(sqlite_url: str) -> str:
    return sqlite_url  # the words do not depend on the backend


async def _seed(app: FastAPI) -> tuple[World, list[tuple[str, str]]]:
    """A world with a history of every kind, and the pages to visit (name, path)."""
    engine = app.state.engine
    world = await build_world(engine)
    rule, agent = world.ids["rule_a"], world.ids["agent_a"]
    base = now_us() // 1_000_000 * 1_000_000 - 3_600_000_000
    for i, (status, reason) in enumerate(
        [("success", ""), ("failed", "exit code 1"), ("timeout", ""), ("skipped", "")]
    ):
        sched = base + i * 60_000_000
        await add_run(
            engine,
            rule,
            agent,
            status=status,
            reason=reason,
            sched_us=sched,
            end=sched + 2_000_000,
            code=0 if status == "success" else 1,
        )
    transport = httpx.ASGITransport(app=app)
    admin = world.auth("root")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
        got = await api.patch(
            f"/api/v1/rules/{rule}", json={"rule": "*/7 * * * * *"}, headers=admin
        )
        assert got.status_code == 200, got.text
        flow = await api.post(
            "/api/v1/workflows",
            json={
                "gid": world.alpha,
                "name": "nightly",
                "rule": "0 2 * * *",
                "nodes": [{"task_id": rule}],
                "edges": [],
            },
            headers=admin,
        )
        assert flow.status_code == 201, flow.text
        cal = await api.post(
            "/api/v1/calendars",
            json={
                "gid": world.alpha,
                "name": "freeze",
                "base": "cn-workdays",
                "include": "2026-10-10",
                "exclude": "",
            },
            headers=admin,
        )
        assert cal.status_code == 201, cal.text
        channel = await api.post(
            "/api/v1/alert-channels",
            json={
                "gid": world.alpha,
                "name": "ops",
                "kind": "dingtalk",
                "target": "https://oapi.dingtalk.com/robot/send?access_token=x",
            },
            headers=admin,
        )
        assert channel.status_code == 201, channel.text
        key = await api.post(
            f"/api/v1/groups/{world.alpha}/keys", json={"key": "db", "limit": 2}, headers=admin
        )
        assert key.status_code in (200, 201), key.text
    run = world.ids["run_a"]
    pages = [
        ("dashboard", "/"),
        ("rules", "/rules"),
        ("rule", f"/rules/{rule}"),
        ("rule_new", "/rules/new"),
        ("rule_edit", f"/rules/{rule}/edit"),
        ("rule_history", f"/rules/{rule}/history"),
        ("rule_diff", f"/rules/{rule}/diff?from=1&to=2"),
        ("runs", "/runs"),
        ("run", f"/runs/{run}"),
        ("timeline", "/timeline"),
        ("agents", "/agents"),
        ("agent", f"/agents/{agent}"),
        ("groups", "/groups"),
        ("group", f"/groups/{world.alpha}"),
        ("calendars", f"/groups/{world.alpha}/calendars"),
        ("calendar", f"/calendars/{cal.json()['id']}"),
        ("alerts", "/alerts"),
        ("alert_channel", f"/alerts/{channel.json()['id']}"),
        ("audit", "/audit"),
        ("users", "/users"),
        ("user", f"/users/{world.user_ids['viewer']}"),
        ("account", "/account"),
        ("workflows", "/workflows"),
        ("workflow", f"/workflows/{flow.json()['id']}"),
        ("workflow_new", "/workflows/new"),
        ("workflow_edit", f"/workflows/{flow.json()['id']}/edit"),
        ("not_found", "/rules/999999"),
    ]
    return world, pages


async def _set_language(app: FastAPI, user_id: int, language: str, zone: str) -> None:
    async with app.state.engine.begin() as conn:
        await conn.execute(
            update(admin_user)
            .where(admin_user.c.id == user_id)
            .values(language=language, timezone=zone)
        )


def english_left(texts: list[str], data: frozenset[str] = frozenset()) -> list[str]:
    """The texts that are, word for word, an English entry the catalog translates (except
    `data`: the seeded users are called viewer, operator, admin…)."""
    words = catalog(Language.ZH_CN).exact
    return sorted(
        {
            t
            for t in texts
            if t not in ALLOWED and t not in data and words.get(t, t) != t and not CJK.search(t)
        }
    )


@pytest.mark.parametrize(
    "table",
    [
        (["规则", "alpha job", "Rules"], ["Rules"]),
        (["success", "成功"], ["success"]),
        (["UnitedCron", "echo hi"], []),
    ],
)
def test_english_left_table(table: tuple[list[str], list[str]]) -> None:
    texts, left = table
    assert english_left(texts) == left


async def _tour(
    base: str, user: str, locale: str, pages: list[tuple[str, str]], folder: Path
) -> dict[str, Any]:
    """Log in as `user` in a browser asking for `locale`; each page's visible texts."""
    seen: dict[str, Any] = {}
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(
                locale=locale, viewport={"width": 1360, "height": 900}
            )
            context.set_default_timeout(STEP_MS)
            page: Page = await context.new_page()
            await page.goto(f"{base}/login")
            seen["login"] = await page.evaluate(VISIBLE_TEXT_JS)
            await page.screenshot(path=str(folder / "login.png"), full_page=True)
            await page.fill("input[name=username]", user)
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await expect(page.locator("#me")).to_have_text(user)
            for name, path in pages:
                await page.goto(base + path)
                seen[name] = {
                    "lang": await page.evaluate("() => document.documentElement.lang"),
                    "texts": await page.evaluate(VISIBLE_TEXT_JS),
                }
                await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        finally:
            await browser.close()
    return seen


async def test_a_zh_cn_user_sees_chinese_and_an_english_user_english(app: FastAPI) -> None:
    async with asyncio.timeout(240):
        world, pages = await _seed(app)
        # root chose zh-CN and Shanghai time on their account; admin chose English and keeps
        # the default zone, in a browser that asks for Chinese (the setting wins)
        await _set_language(app, world.user_ids["root"], "zh-CN", "Asia/Shanghai")
        await _set_language(app, world.user_ids["admin"], "en", "")
        async with running_admin(app) as base:
            chinese = await _tour(base, "root", "zh-CN", pages, SHOTS / "zh-CN")
            english = await _tour(base, "admin", "zh-CN", pages[:12], SHOTS / "en")
    assert english_left(chinese.pop("login")) == []  # before login: Accept-Language
    for name, found in chinese.items():
        assert found["lang"] == "zh-CN", name
        # users' and the seeded token's names, the built-in calendars' (typed into a rule's
        # `calendar`): data
        data = frozenset(world.user_ids) | {"weekdays", "cn-workdays", "cn-holidays", "test"}
        left = english_left(found["texts"], data)
        assert left == [], f"English left on the {name} page"
        assert any(CJK.search(t) for t in found["texts"]), name
    english.pop("login")
    for name, found in english.items():
        assert found["lang"] == "en", name
        chinese_words = [t for t in found["texts"] if CJK.search(t)]
        assert chinese_words == [], f"Chinese on the English {name} page: {chinese_words}"
