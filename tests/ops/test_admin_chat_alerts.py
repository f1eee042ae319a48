"""Chat alert channels in the admin: their fields checked with errors naming the field, the
robot's URL hidden from viewers and audits, a test send delivered through a stand-in."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from center.alert_loop import AlertLoop
from center.tables import audit_log
from tests.admin.seed import World
from tests.admin.test_pages import _csrf, _session_client
from tests.integration.cluster import center_config
from tests.ops.chat_receivers import DINGTALK_SECRET, TOKEN, running_chat_server
from tests.ops.receivers import LOCAL_TARGETS
from tests.ops.test_admin_alerts import app

__all__ = ["app"]  # the admin allowing targets on 127.0.0.1, where the stand-ins listen
URL = "/api/v1/alert-channels"
DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=abc123"
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k-123"
FEISHU = "https://open.feishu.cn/open-apis/bot/v2/hook/h-123"
SLACK = "https://hooks.slack.com/services/T1/B1/s-123"


def robot(world: World, kind: str, target: str, **values: Any) -> dict[str, Any]:
    return {"gid": world.alpha, "name": f"{kind} robot", "kind": kind, "target": target} | values


@pytest.mark.parametrize(
    ("kind", "target", "values", "field", "reason"),
    [
        ("dingtalk", "https://oapi.dingtalk.com/robot/send", {}, "target", "access_token"),
        ("dingtalk", DINGTALK.replace("https", "http"), {}, "target", "https://"),
        ("dingtalk", DINGTALK, {"secret": "abc"}, "secret", "starts with SEC"),
        ("dingtalk", DINGTALK, {"mentions": "bob smith"}, "mentions", "'bob smith'"),
        ("wecom", WECOM, {"secret": "x"}, "secret", "WeCom robots sign nothing"),
        ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send", {}, "target", "key="),
        ("feishu", "https://open.feishu.cn/open-apis/bot/v2/", {}, "target", "/hook/"),
        ("feishu", FEISHU, {"mentions": "all"}, "mentions", "only DingTalk and WeCom"),
        ("slack", SLACK, {"secret": "x"}, "secret", "Slack robots sign nothing"),
        ("slack", "https://127.0.0.2/services/T/B/x", {}, "target", "loopback"),
        ("slack", "https://hooks.slack.com", {}, "target", "services"),
        ("slack", SLACK, {"language": "fr"}, "language", "must be en or zh-CN"),
        ("wecom", WECOM, {"language": 7}, "language", "must be text"),
    ],
)
async def test_bad_chat_fields_are_named_and_nothing_is_stored(
    api: httpx.AsyncClient,
    world: World,
    kind: str,
    target: str,
    values: dict[str, Any],
    field: str,
    reason: str,
):
    """Each wrong field answers 422 naming the field and why; no channel is made."""
    auth = world.auth("admin")
    answer = await api.post(URL, json=robot(world, kind, target, **values), headers=auth)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and reason in error["reason"], error
    assert (await api.get(URL, headers=auth)).json() == []


async def test_chat_channels_are_made_with_their_fields_and_viewers_see_no_credential(
    api: httpx.AsyncClient, world: World, app: FastAPI
):
    """Each platform's channel is created; mentions are stored in their plain form; viewers and
    the audit log see the robot's URL without its token; a new kind drops the old secret."""
    auth = world.auth("admin")
    made = {}
    for kind, target, values in (
        ("dingtalk", DINGTALK, {"secret": DINGTALK_SECRET, "mentions": "@alice, 138-0000-1111"}),
        ("wecom", WECOM, {"mentions": "@all"}),
        ("feishu", FEISHU, {"secret": "feishu-secret"}),
        ("slack", SLACK, {}),
    ):
        answer = await api.post(URL, json=robot(world, kind, target, **values), headers=auth)
        assert answer.status_code == 201, answer.text
        made[kind] = answer.json()
    assert made["dingtalk"]["mentions"] == "138-0000-1111, alice"
    assert made["wecom"]["mentions"] == "all"
    assert [made[k]["has_secret"] for k in made] == [True, False, True, False]
    seen = (await api.get(f"{URL}/{made['slack']['id']}", headers=world.auth("viewer"))).json()
    assert seen["target"] == "https://hooks.slack.com/services/***"
    listed = (await api.get(URL, headers=world.auth("viewer"))).json()
    assert all("123" not in c["target"] for c in listed)
    hook = (
        await api.post(
            URL, json=robot(world, "webhook", "https://hooks.example/x", name="w"), headers=auth
        )
    ).json()
    moved = await api.patch(
        f"{URL}/{hook['id']}", json={"kind": "feishu", "target": FEISHU}, headers=auth
    )
    assert moved.status_code == 200 and moved.json()["secret"] == ""  # not the webhook's key
    async with app.state.engine.connect() as conn:
        audits = (await conn.execute(select(audit_log.c.after_json))).scalars().all()
    assert not [a for a in audits if "abc123" in a or "s-123" in a or "feishu-secret" in a]


async def test_a_test_send_reaches_a_dingtalk_robot_signed(
    api: httpx.AsyncClient, world: World, app: FastAPI, db_url: str
):
    """ "Send a test" queues a notification that the leader's loop delivers to the robot,
    signed as DingTalk checks it."""
    async with running_chat_server("dingtalk") as server:
        body = robot(world, "dingtalk", server.url(), secret=DINGTALK_SECRET, mentions="all")
        made = await api.post(URL, json=body, headers=world.auth("admin"))
        assert made.status_code == 201, made.text
        await api.post(f"{URL}/{made.json()['id']}/test", headers=world.auth("admin"))
        loop = AlertLoop(app.state.engine, center_config(db_url, **LOCAL_TARGETS))
        assert await loop.deliver_due(2**62) == 1
        got = await server.next()
    assert got.body["markdown"]["title"] == "[UnitedCron] TEST · test notification"
    assert got.body["at"]["isAtAll"] is True


async def test_a_channel_made_in_chinese_tests_in_chinese(
    api: httpx.AsyncClient, world: World, app: FastAPI, db_url: str
):
    """`language` is stored as given ("" by default, changed by PATCH), and a test send to a
    zh-CN robot is Chinese, signed as DingTalk checks it."""
    auth = world.auth("admin")
    async with running_chat_server("dingtalk") as server:
        body = robot(world, "dingtalk", server.url(), secret=DINGTALK_SECRET)
        made = await api.post(URL, json=body, headers=auth)
        assert made.status_code == 201 and made.json()["language"] == "", made.text
        url = f"{URL}/{made.json()['id']}"
        changed = await api.patch(url, json={"language": "zh-CN"}, headers=auth)
        assert changed.status_code == 200 and changed.json()["language"] == "zh-CN"
        await api.post(f"{url}/test", headers=auth)
        loop = AlertLoop(app.state.engine, center_config(db_url, **LOCAL_TARGETS))
        assert await loop.deliver_due(2**62) == 1
        got = await server.next()
        assert server.refused.empty()
    assert got.body["markdown"]["title"] == "[UnitedCron] 测试 · 测试通知"
    assert "告警渠道 dingtalk robot 的测试通知" in got.body["markdown"]["text"]


async def test_the_form_makes_a_dingtalk_robot_and_shows_how_it_signs(app: FastAPI, world: World):
    """Through the page: a DingTalk robot with a secret and mentions; a bad mention answers
    422 naming the field; the channel page says how messages are signed."""
    async with running_chat_server("dingtalk") as server:
        client = await _session_client(app, world, "admin")
        async with client:
            form = {
                "csrf": await _csrf(client, "/alerts"),
                "gid": str(world.alpha),
                "name": "ding ops",
                "kind": "dingtalk",
                "target": server.url(),
                "secret": DINGTALK_SECRET,
                "mentions": "13800001111",
                "events": ["run_failed"],
                "throttle_s": "600",
                "grace_s": "60",
                "status": "1",
                "language": "zh-CN",
            }
            bad = await client.post("/alerts", data=form | {"mentions": "no such thing"})
            assert bad.status_code == 422 and "mentions" in bad.text
            created = await client.post("/alerts", data=form)
            assert created.status_code == 303, created.text
            page = await client.get(created.headers["location"])
    assert 'id="signing"' in page.text and "timestamp and sign in the URL" in page.text
    assert "13800001111" in page.text and DINGTALK_SECRET not in page.text
    assert '<option value="zh-CN" selected>' in page.text
    viewer = await _session_client(app, world, "viewer")
    async with viewer:
        listing = await viewer.get("/alerts")
    assert "ding ops" in listing.text and TOKEN not in listing.text
