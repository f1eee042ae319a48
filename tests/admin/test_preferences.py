"""One's own language and time zone: the account page's form and the API store them (checked,
audited), and the pages that follow are shown in them; the workflow graph's words follow too."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from admin.dag_svg import layout
from center.dag import Edge
from center.tables import admin_user, audit_log
from i18n.catalogs import catalog
from i18n.languages import Language
from i18n.zones import wall_clock
from tests.admin.seed import World
from tests.admin.test_pages import _csrf, _session_client

ENGLISH = {"Accept-Language": "en-US,en;q=0.9"}
CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}


async def _prefs_of(app: FastAPI, user_id: int) -> tuple[str, str]:
    query = select(admin_user.c.language, admin_user.c.timezone).where(admin_user.c.id == user_id)
    async with app.state.engine.connect() as conn:
        row = (await conn.execute(query)).one()
    return str(row[0]), str(row[1])


async def _save(client: httpx.AsyncClient, language: str, timezone: str) -> httpx.Response:
    csrf = await _csrf(client, "/account")
    form = {"csrf": csrf, "language": language, "timezone": timezone}
    return await client.post("/account/preferences", data=form, headers=ENGLISH)


async def test_chinese_setting_wins_over_the_browser(app: FastAPI, world: World):
    """After saving zh-CN, pages are in Chinese even when the browser asks for English; saving
    "" (automatic) gives the browser its language back."""
    async with await _session_client(app, world, "viewer") as client:
        before = await client.get("/agents", headers=ENGLISH)
        assert "<h1>Agents</h1>" in before.text and 'lang="en"' in before.text
        saved = await _save(client, "zh-CN", "")
        assert saved.status_code == 200
        assert "偏好设置已保存。" in saved.text  # the answer already follows the new choice
        page = await client.get("/agents", headers=ENGLISH)
        assert 'lang="zh-CN"' in page.text and "<h1>节点</h1>" in page.text
        assert "No agents in your groups." not in page.text
        account = await client.get("/account", headers=ENGLISH)
        assert '<option value="zh-CN" selected>' in account.text
        await _save(client, "", "")
        again = await client.get("/agents", headers=ENGLISH)
        assert "<h1>Agents</h1>" in again.text
    assert await _prefs_of(app, world.user_ids["viewer"]) == ("", "")


@pytest.mark.parametrize(
    ("language", "timezone", "field"),
    [
        ("en", "Mars/Base", "timezone"),
        ("en", "../../etc/passwd", "timezone"),
        ("en", "Asia/" + "x" * 200, "timezone"),
        ("fr", "UTC", "language"),
        ("zh", "", "language"),  # only the tags the select offers
    ],
)
async def test_bad_preferences_are_refused_and_store_nothing(
    app: FastAPI, world: World, language: str, timezone: str, field: str
):
    """A language we do not serve or a zone nobody knows is a 422 naming the field; the row
    keeps what it had and the form shows what was typed."""
    async with await _session_client(app, world, "viewer") as client:
        answer = await _save(client, language, timezone)
    assert answer.status_code == 422
    assert f'<strong class="field">{field}</strong>' in answer.text
    assert await _prefs_of(app, world.user_ids["viewer"]) == ("", "")


async def test_times_show_in_the_chosen_zone(app: FastAPI, world: World):
    """With Asia/Shanghai chosen, the audit log's times are UTC+8 and its header names the zone."""
    async with await _session_client(app, world, "root") as client:
        saved = await _save(client, "en", "Asia/Shanghai")
        assert saved.status_code == 200 and "Preferences saved." in saved.text
        page = await client.get("/audit", headers=ENGLISH)
    async with app.state.engine.connect() as conn:
        entry = (
            (await conn.execute(select(audit_log).where(audit_log.c.action == "user.preferences")))
            .mappings()
            .one()
        )
    assert "Asia/Shanghai" in entry["after_json"] and entry["before_json"]
    shanghai, utc = wall_clock(entry["at_us"], "Asia/Shanghai"), wall_clock(entry["at_us"], "UTC")
    assert shanghai != utc
    assert f"<td>{shanghai}</td>" in page.text and f"<td>{utc}</td>" not in page.text
    assert "when (Asia/Shanghai)" in page.text
    assert await _prefs_of(app, world.user_ids["root"]) == ("en", "Asia/Shanghai")


async def test_preferences_through_the_api(app: FastAPI, world: World, api: httpx.AsyncClient):
    """PUT /auth/me/preferences stores both and answers them; /auth/me shows them; a bad zone
    is a 422 naming `timezone`, its reason in the caller's language with the English kept."""
    auth = world.auth("operator")
    url = "/api/v1/auth/me/preferences"
    answer = await api.put(
        url, json={"language": "zh-CN", "timezone": "Asia/Shanghai"}, headers=auth
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"language": "zh-CN", "timezone": "Asia/Shanghai"}
    me = (await api.get("/api/v1/auth/me", headers=auth)).json()
    assert (me["language"], me["timezone"]) == ("zh-CN", "Asia/Shanghai")
    bad = await api.put(url, json={"language": "en", "timezone": "Mars/Base"}, headers=auth)
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["field"] == "timezone" and "Mars/Base" in error["reason"]
    assert error["reason"].startswith("未知时区") and error["reason_en"].startswith("unknown")
    assert await _prefs_of(app, world.user_ids["operator"]) == ("zh-CN", "Asia/Shanghai")
    cleared = await api.put(url, json={}, headers=auth)
    assert cleared.json() == {"language": "", "timezone": ""}


def test_the_graph_draws_its_words_in_the_readers_language():
    """States and edge kinds in the SVG come through `words`; names are data, kept as they are."""
    names = {1: "extract", 2: "load"}
    edges = [Edge(1, 2, "failure")]
    states = {1: "failed", 2: "pending"}
    english = layout(names, edges, states)
    assert [b.state_label for b in english.boxes] == ["failed", "pending"]
    assert english.arrows[0].label == "failure"
    chinese = layout(names, edges, states, catalog(Language.ZH_CN).gettext)
    assert [b.label for b in chinese.boxes] == ["extract", "load"]
    assert [b.state for b in chinese.boxes] == ["failed", "pending"]  # the classes stay
    assert chinese.boxes[0].state_label == "失败" and chinese.boxes[1].state_label == "待处理"
    assert chinese.arrows[0].label == "失败时" and chinese.arrows[0].when == "failure"


@pytest.mark.parametrize(
    ("path", "heading"),
    [
        ("/agents", "<h1>节点</h1>"),
        ("/groups", "<h1>分组</h1>"),
        ("/alerts", "<h1>告警渠道</h1>"),
        ("/users", "<h1>用户</h1>"),
        ("/audit", "<h1>审计日志</h1>"),
        ("/account", "偏好设置"),
        ("/workflows", "<h1>工作流 "),
        ("/workflows/new", "<h1>新建工作流</h1>"),
    ],
)
async def test_pages_in_chinese(app: FastAPI, world: World, path: str, heading: str):
    """Each page renders for a browser asking for Chinese, in Chinese."""
    async with await _session_client(app, world, "root") as client:
        page = await client.get(path, headers=CHINESE)
    assert page.status_code == 200 and heading in page.text, page.text[-2000:]


async def test_login_page_follows_the_browser(api: httpx.AsyncClient):
    """Before any session, the login form is in the browser's language."""
    page = await api.get("/login", headers=CHINESE)
    assert "用户名" in page.text and "Username" not in page.text
    english = await api.get("/login", headers=ENGLISH)
    assert "Username" in english.text
