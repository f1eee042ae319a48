"""Chat alerts delivered by the leader's real alert loop to stand-ins of DingTalk, WeCom, Feishu
and Slack that check each request the way the platform documents it."""

from __future__ import annotations

import asyncio
import socket
from email.header import decode_header, make_header
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center.alert_loop import RETRY_BASE_S, AlertLoop
from center.alerts import model, senders
from center.alerts.pinned import Answer
from center.tables import alert_channel, task_process
from tests.integration.cluster import add_group, add_rule, center_config, now_us
from tests.ops.chat_receivers import (
    DINGTALK_SECRET,
    FEISHU_SECRET,
    TOKEN,
    ChatRequest,
    ChatServer,
    running_chat_server,
)
from tests.ops.receivers import LOCAL_TARGETS, smtp_receiver, webhook_receiver
from tests.ops.test_alerts import SECRET, add_channel, notifications

pytestmark = pytest.mark.timeout(120)
S = 1_000_000
SECRETS = {"dingtalk": DINGTALK_SECRET, "feishu": FEISHU_SECRET, "wecom": "", "slack": ""}
MENTIONS = {"dingtalk": "13800001111, ops-lead", "wecom": "13800001111, ops-lead, all"}
PLATFORMS = ("dingtalk", "wecom", "feishu", "slack")


async def _run(engine: AsyncEngine, task_id: int, at_us: int, n: int, status: str) -> None:
    """A finished run of `task_id`, reported at `at_us` (exit code 2 unless it succeeded)."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(task_process).values(
                task_id=task_id,
                runid=f"{task_id}-{n}-5-0-0",
                aid=5,
                status=status,
                code=0 if status == "success" else 2,
                sched_us=at_us - 1000 - n,
                start=at_us - 900,
                end=at_us - 100,
                updated_us=at_us,
            )
        )


def text_of(kind: str, got: ChatRequest) -> str:
    """Everything the message says, whatever the platform's layout."""
    body = got.body
    if kind == "dingtalk":
        return f"{body['markdown']['title']}\n{body['markdown']['text']}"
    if kind == "wecom":
        return str(body["text"]["content"])
    if kind == "feishu":
        [(_, post)] = body["content"]["post"].items()
        lines = [t["text"] for paragraph in post["content"] for t in paragraph]
        return "\n".join([post["title"], *lines])
    blocks = [b.get("text", {}).get("text", "") for b in body["blocks"]]
    notes = [e["text"] for b in body["blocks"] for e in b.get("elements", [])]
    return "\n".join([body["text"], *blocks, *notes])


async def _chat_channel(engine: AsyncEngine, gid: int, server: ChatServer, **values: Any) -> int:
    row = {
        "kind": server.kind,
        "secret": SECRETS[server.kind],
        "mentions": MENTIONS.get(server.kind, ""),
        "events": model.RUN_FAILED,
        "name": f"{server.kind} robot",
    }
    target = values.pop("target", server.url())
    return await add_channel(engine, gid, target, **(row | values))


@pytest.mark.parametrize("kind", PLATFORMS)
async def test_an_alert_then_its_recovery_reach_the_robot_signed(
    engine: AsyncEngine, db_url: str, kind: str
):
    """A failed run reaches the robot as the platform's message with a valid signature; a
    second failure in the throttle window is held back; the recovery says how many were."""
    gid = await add_group(engine)
    task_id = await add_rule(engine, [], gid=gid, name="nightly-backup")
    async with running_chat_server(kind) as server:
        await _chat_channel(engine, gid, server)
        loop = AlertLoop(engine, center_config(db_url, **LOCAL_TARGETS))
        t0 = now_us()
        await loop.evaluate(t0)
        await _run(engine, task_id, t0 + 1000, 1, "failed")
        assert await loop.evaluate(t0 + 3 * S) == 1
        assert await loop.deliver_due(t0 + 3 * S) == 1
        alert = await server.next()
        await _run(engine, task_id, t0 + 4 * S, 2, "failed")
        assert await loop.evaluate(t0 + 7 * S) == 0  # throttled
        await _run(engine, task_id, t0 + 8 * S, 3, "success")
        assert await loop.evaluate(t0 + 11 * S) == 1
        assert await loop.deliver_due(t0 + 11 * S) == 1
        recovery = await server.next()
        assert server.refused.empty()
    said = text_of(kind, alert)
    assert "[UnitedCron] ALERT · run failed" in said and "nightly-backup" in said
    assert f"{task_id}-1-5-0-0" in said and "exit code 2" in said
    again = text_of(kind, recovery)
    assert "[UnitedCron] RECOVERED · run failed" in again and "succeeded again" in again
    assert "1 more like it were not sent (throttled)." in again
    assert "RECOVERED: " not in again  # the payload's prefix is not repeated
    _check_mentions(kind, alert.body)
    assert [n["status"] for n in await notifications(engine)] == ["sent", "sent"]


@pytest.mark.parametrize("kind", PLATFORMS)
async def test_a_chinese_channel_is_told_in_chinese_and_signed(
    engine: AsyncEngine, db_url: str, kind: str
):
    """A channel whose language is zh-CN gets 告警, the event's Chinese name and a Chinese
    summary (its values as they were), signed as the platform checks; the center's own
    default (English) does not override the channel's choice."""
    gid = await add_group(engine)
    task_id = await add_rule(engine, [], gid=gid, name="nightly-backup")
    async with running_chat_server(kind) as server:
        await _chat_channel(engine, gid, server, language="zh-CN")
        loop = AlertLoop(engine, center_config(db_url, **LOCAL_TARGETS))
        t0 = now_us()
        await loop.evaluate(t0)
        await _run(engine, task_id, t0 + 1000, 1, "failed")
        assert await loop.evaluate(t0 + 3 * S) == 1
        assert await loop.deliver_due(t0 + 3 * S) == 1
        alert = await server.next()
        assert server.refused.empty()
    said = text_of(kind, alert)
    assert "[UnitedCron] 告警 · 运行失败" in said
    assert f"规则 nightly-backup（{task_id}）在节点 5 上：运行失败，退出码 2" in said
    assert f"（运行 {task_id}-1-5-0-0）" in said and "failed" not in said
    if kind == "feishu":
        assert list(alert.body["content"]["post"]) == ["zh_cn"]
    assert [n["status"] for n in await notifications(engine)] == ["sent"]


async def test_the_centers_alert_language_for_webhooks_and_email_a_channels_own_wins(
    engine: AsyncEngine, db_url: str
):
    """With UNITEDCRON_CENTER_ALERT_LANGUAGE=zh-CN a channel that chose no language is told in
    Chinese: the webhook's summary (same keys, signed over the body sent) and the email's
    subject and body; a channel that chose en is told in English."""
    gid = await add_group(engine)
    task_id = await add_rule(engine, [], gid=gid, name="nightly-backup")
    async with webhook_receiver() as hook, smtp_receiver() as smtp:
        await add_channel(engine, gid, hook.url, name="zh hook", events=model.RUN_FAILED)
        await add_channel(
            engine, gid, hook.url, name="en hook", events=model.RUN_FAILED, language="en"
        )
        mail = {"kind": model.EMAIL, "events": model.RUN_FAILED, "name": "mail"}
        await add_channel(engine, gid, "oncall@example.test", **mail)
        settings = LOCAL_TARGETS | {"center_smtp_host": "127.0.0.1", "center_smtp_port": smtp.port}
        config = center_config(db_url, center_alert_language="zh-CN", **settings)
        loop = AlertLoop(engine, config)
        t0 = now_us()
        await loop.evaluate(t0)
        await _run(engine, task_id, t0 + 1000, 1, "failed")
        assert await loop.evaluate(t0 + 3 * S) == 3
        assert await loop.deliver_due(t0 + 3 * S) == 3
        hooks = {d.json["channel"]["name"]: d for d in [await hook.next(), await hook.next()]}
        _, message = await smtp.next()
    chinese, english = hooks["zh hook"], hooks["en hook"]
    assert chinese.signed_with(SECRET) and english.signed_with(SECRET)
    assert set(chinese.json) == set(english.json) and chinese.json["event"] == "run_failed"
    assert chinese.json["summary"].startswith(f"规则 nightly-backup（{task_id}）在节点 5 上")
    assert english.json["summary"].startswith(f"rule nightly-backup ({task_id}) on agent 5")
    subject = str(make_header(decode_header(message["Subject"])))
    assert subject.startswith("[UnitedCron] 告警 运行失败: 规则 nightly-backup")
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    assert "分组: " in body and "运行失败，退出码 2" in body


def _check_mentions(kind: str, body: dict[str, Any]) -> None:
    if kind == "dingtalk":
        assert body["at"] == {
            "atMobiles": ["13800001111"],
            "atUserIds": ["ops-lead"],
            "isAtAll": False,
        }
        assert "@13800001111 @ops-lead" in body["markdown"]["text"]
    elif kind == "wecom":
        assert body["text"]["mentioned_list"] == ["ops-lead", "@all"]
        assert body["text"]["mentioned_mobile_list"] == ["13800001111"]


# The wrong credential per platform: DingTalk's and Feishu's signing secret, WeCom's key and
# Slack's URL; and the error the platform answers with.
WRONG = {
    "dingtalk": ({"secret": "SEC" + "0" * 64}, "DingTalk answered errcode 310000: sign not match"),
    "feishu": ({"secret": "not-the-secret"}, "Feishu answered code 19021: sign match fail"),
    "wecom": ({"target": "wrong-key"}, "WeCom answered errcode 93000: invalid webhook url"),
    "slack": ({"target": "wrong-token"}, "Slack answered HTTP 404: no_service"),
}


@pytest.mark.parametrize("kind", PLATFORMS)
async def test_a_wrong_credential_is_the_platforms_error_retried_with_backoff(
    engine: AsyncEngine, db_url: str, kind: str
):
    """The platform refuses (in its own words); the notification stays pending with that
    error and a later try; once the channel is right, the retry is delivered."""
    gid = await add_group(engine)
    task_id = await add_rule(engine, [], gid=gid)
    wrong, error = WRONG[kind]
    async with running_chat_server(kind) as server:
        values = dict(wrong)
        if "target" in values:
            values["target"] = server.url(values["target"])
        channel = await _chat_channel(engine, gid, server, **values)
        loop = AlertLoop(engine, center_config(db_url, **LOCAL_TARGETS))
        t0 = now_us()
        await loop.evaluate(t0)
        await _run(engine, task_id, t0 + 1000, 1, "failed")
        await loop.evaluate(t0 + 3 * S)
        assert await loop.deliver_due(t0 + 3 * S) == 0
        await server.refused.get()
        [row] = await notifications(engine)
        assert (row["status"], row["attempts"]) == ("pending", 1)
        assert row["error"].startswith(error), row["error"]
        assert TOKEN not in row["error"]  # the URL's credential stays out of the record
        assert row["next_try_us"] >= now_us() + (RETRY_BASE_S - 1) * S
        right = {"secret": SECRETS[kind], "target": server.url()}
        async with engine.begin() as conn:
            await conn.execute(
                update(alert_channel).where(alert_channel.c.id == channel).values(**right)
            )
        assert await loop.deliver_due(t0 + 3 * S) == 0  # not due yet: backoff
        assert await loop.deliver_due(row["next_try_us"]) == 1
        await server.next()
    [row] = await notifications(engine)
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 2, "")


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("dingtalk", "DingTalk answered errcode 310000: invalid timestamp"),
        ("feishu", "Feishu answered code 19021: sign match fail or timestamp is not within"),
    ],
)
async def test_a_clock_two_hours_behind_signs_stale_requests_that_are_refused(
    engine: AsyncEngine, db_url: str, kind: str, error: str, monkeypatch: pytest.MonkeyPatch
):
    """The signature's timestamp is the sender's clock at sending: two hours off, the platform
    refuses it as stale and the error is recorded for a retry."""
    gid = await add_group(engine)
    async with running_chat_server(kind) as server:
        channel = await _chat_channel(engine, gid, server)
        data = model.probe_payload(model.Channel(channel, gid, "x", kind, "", "", frozenset()), 1)
        to = senders.Destination(kind, server.url(), SECRETS[kind])
        monkeypatch.setattr(senders, "now_us", lambda: now_us() - 2 * 3600 * S)
        allowed = center_config(db_url, **LOCAL_TARGETS).alert_networks
        with pytest.raises(senders.SendError, match=error):
            await senders.deliver(to, data, senders.SmtpSettings(host=""), 5, allowed)
        monkeypatch.undo()
        await senders.deliver(to, data, senders.SmtpSettings(host=""), 5, allowed)
        got = await server.next()
    assert "[UnitedCron] TEST · test notification" in text_of(kind, got)


async def test_a_chat_robot_on_plain_http_to_a_public_host_is_refused(
    monkeypatch: pytest.MonkeyPatch,
):
    """A robot's URL carries its credential: http:// to a public address is refused before
    any connection, with the credential kept out of the reason; https:// is not."""

    async def resolver(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    connects: list[Any] = []
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolver)
    refusal = Answer(200, "OK", b'{"errcode": 93000, "errmsg": "invalid webhook url"}')

    def exchange(*args: Any, **_: Any) -> Answer:
        connects.append(args)
        return refusal

    monkeypatch.setattr(senders, "exchange", exchange)
    data = {"event": "test", "state": "test", "summary": "s"}
    for kind, path in (
        ("wecom", f"/cgi-bin/webhook/send?key={TOKEN}"),
        ("slack", f"/services/{TOKEN}"),
    ):
        to = senders.Destination(kind, f"http://robot.example{path}")
        with pytest.raises(senders.TargetRefused, match="must be an https:// URL") as refused:
            await senders.deliver(to, data, senders.SmtpSettings(host=""), 5)
        assert TOKEN not in str(refused.value) and not connects
    https = senders.Destination("wecom", f"https://robot.example/cgi-bin/webhook/send?key={TOKEN}")
    with pytest.raises(senders.SendError, match="WeCom answered"):
        await senders.deliver(https, data, senders.SmtpSettings(host=""), 5)
    assert len(connects) == 1
