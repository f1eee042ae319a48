"""Chat robots' pure parts, table-driven: signatures, the words, each platform's layout, the
platforms' replies, mentions, URL shapes and the credential kept out of sight."""

from __future__ import annotations

import json
from typing import Any

import pytest

from center.alerts import chat
from center.alerts.chat import Mentions, Robot
from center.alerts.chat_text import (
    ENGLISH,
    ChatText,
    chat_text,
    phrases_in,
    plain_lines,
    summary_in,
)
from center.alerts.model import EVENTS, KINDS, Channel, probe_payload
from center.alerts.targets import parse_networks, plain_http_problem
from i18n.catalogs import catalog
from i18n.languages import Language

ALERT: dict[str, Any] = {
    "event": "run_failed",
    "state": "alert",
    "summary": "rule nightly (7) on agent a1: failed, exit code 2 (run 7-1)",
    "subject": "rule:7",
    "group": {"id": 3, "name": "ops"},
    "channel": {"id": 9, "name": "robot"},
    "suppressed": 0,
    "at_us": 1_700_000_000_000_000,
    "at": "2023-11-14T22:13:20Z",
    "rule": {"id": 7, "name": "nightly"},
    "agent": {"id": 5, "name": "a1"},
    "run": {"runid": "7-1", "status": "failed", "code": 2},
}
RECOVERY = ALERT | {
    "state": "recovery",
    "summary": "RECOVERED: rule nightly (7) on agent a1: succeeded again (run 7-3)",
    "suppressed": 4,
    "run": {"runid": "7-3", "status": "success", "code": 0},
}
TEST = probe_payload(Channel(9, 3, "robot", "dingtalk", "", "", frozenset(), group_name="ops"), 0)


# ------------------------------------------------------------------------------ signatures


@pytest.mark.parametrize(
    ("secret", "timestamp_ms", "sign"),
    [
        ("SECtest", 1700000000000, "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g="),
        ("SECtest", 1700000000001, "r4CWp/Dz+Ng0sbTjH1vB0Fr+uQ2fn831mssaN6/C05I="),
    ],
)
def test_dingtalk_sign_and_its_url(secret: str, timestamp_ms: int, sign: str):
    """DingTalk: base64(HMAC-SHA256(secret, "ts\\nsecret")), URL-encoded into the query next
    to the access token (+, / and = encoded, so that they survive the query's decoding)."""
    assert chat.dingtalk_sign(secret, timestamp_ms) == sign
    url = chat.dingtalk_url(
        "https://oapi.dingtalk.com/robot/send?access_token=t", secret, timestamp_ms
    )
    encoded = sign.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert url == (
        f"https://oapi.dingtalk.com/robot/send?access_token=t&timestamp={timestamp_ms}&sign={encoded}"
    )


@pytest.mark.parametrize(
    ("secret", "timestamp_s", "sign"),
    [("feishu-secret", 1700000000, "OrBzY1Y01Gq+HgJsl+7OfWcMVwc7YocohQm5iiZwjhU=")],
)
def test_feishu_sign(secret: str, timestamp_s: int, sign: str):
    """Feishu: base64(HMAC-SHA256(key="ts\\nsecret", msg="")): key and message swapped."""
    assert chat.feishu_sign(secret, timestamp_s) == sign
    assert chat.feishu_sign(secret, timestamp_s + 1) != sign


@pytest.mark.parametrize(
    ("robot", "url", "signed_fields"),
    [
        (
            Robot("dingtalk", "https://d/robot/send?access_token=t", "SECx"),
            "timestamp=1700000000123&sign=",
            (),
        ),
        (Robot("dingtalk", "https://d/robot/send?access_token=t"), None, ()),
        (Robot("feishu", "https://f/open-apis/bot/v2/hook/h", "k"), None, ("timestamp", "sign")),
        (Robot("feishu", "https://f/open-apis/bot/v2/hook/h"), None, ()),
        (Robot("wecom", "https://w/cgi-bin/webhook/send?key=k"), None, ()),
        (Robot("slack", "https://hooks.slack.com/services/T/B/x"), None, ()),
    ],
)
def test_requests_sign_where_and_when_the_platform_does(
    robot: Robot, url: str | None, signed_fields: tuple[str, ...]
):
    """DingTalk signs in the URL (ms), Feishu in the body (s), only with a secret; the others
    send to the URL as it is."""
    request = chat.chat_request(robot, ALERT, 1_700_000_000_123_456)
    body = json.loads(request.body)
    if url is None:
        assert request.url == robot.url
    else:
        assert request.url.startswith(f"{robot.url}&{url}")
    for name in ("timestamp", "sign"):
        assert (name in body) == (name in signed_fields)
    if signed_fields:
        assert body["timestamp"] == "1700000000"
        assert body["sign"] == chat.feishu_sign(robot.secret, 1_700_000_000)


# ------------------------------------------------------------------------------ the words


@pytest.mark.parametrize(
    ("data", "title", "summary", "note"),
    [
        (ALERT, "[UnitedCron] ALERT · run failed", ALERT["summary"], ""),
        (
            RECOVERY,
            "[UnitedCron] RECOVERED · run failed",
            "rule nightly (7) on agent a1: succeeded again (run 7-3)",
            "4 more like it were not sent (throttled).",
        ),
        (TEST, "[UnitedCron] TEST · test notification", "test notification of channel robot", ""),
        (
            ALERT | {"event": "agent_offline"},
            "[UnitedCron] ALERT · agent offline",
            ALERT["summary"],
            "",
        ),
        (ALERT | {"event": "brand_new"}, "[UnitedCron] ALERT · brand_new", ALERT["summary"], ""),
    ],
)
def test_chat_text(data: dict[str, Any], title: str, summary: str, note: str):
    """The title names the state and the event; a recovery's summary loses its prefix; the
    note counts what was throttled; an unknown event shows its raw name."""
    text = chat_text(data)
    assert (text.title, text.summary, text.note) == (title, summary, note)


def test_facts_come_in_order_and_only_when_known():
    """Group, rule, agent, run and time: each only if the payload has it."""
    assert chat_text(ALERT).facts == (
        ("group", "ops (#3)"),
        ("rule", "nightly (#7)"),
        ("agent", "a1 (#5)"),
        ("run", "7-1"),
        ("at", "2023-11-14T22:13:20Z"),
    )
    assert [k for k, _ in chat_text(TEST).facts] == ["group", "at"]


def test_a_long_summary_is_clipped_and_a_translation_replaces_every_word():
    """A summary over 1000 characters ends with an ellipsis; another phrase table changes the
    words (a missing key falls back to English)."""
    long = chat_text(ALERT | {"summary": "x" * 5000}).summary
    assert len(long) == 1000 and long.endswith("…")
    other = {k: f"<{v}>" for k, v in ENGLISH.items() if k != "fact.run"}
    lines = plain_lines(chat_text(RECOVERY | {"suppressed": 2}, other))
    assert lines[0] == "[<UnitedCron>] <RECOVERED> · <run failed>"
    assert "<group>: ops (#3)" in lines and "run: 7-3" in lines
    assert lines[-1] == "<2 more like it were not sent (throttled).>"


def test_the_phrase_table_covers_every_event_and_state():
    """Every alert event and state has its words, in every language we have a catalog for
    (Chinese: every phrase but the product's name translated)."""
    for language in Language:
        phrases = phrases_in(language.value, catalog(language).gettext)
        assert set(phrases) == set(ENGLISH) and phrases["lang"] == language.value
    chinese = phrases_in("zh-CN", catalog(Language.ZH_CN).gettext)
    assert [k for k in ENGLISH if chinese[k] == ENGLISH[k]] == ["product"]
    for name in (*EVENTS, "test"):
        assert f"event.{name}" in ENGLISH
    for state in ("alert", "recovery", "test"):
        assert f"state.{state}" in ENGLISH


def test_chinese_words_and_summaries_come_from_the_catalog():
    """In zh-CN the title, facts, note and the summary (matched against the catalog's
    sentences, its values kept) are Chinese; a recovery's summary for webhooks keeps its
    prefix, translated; English passes everything through unchanged."""
    words = catalog(Language.ZH_CN)
    phrases = phrases_in("zh-CN", words.gettext)
    text = chat_text(RECOVERY, phrases, words.reason)
    assert text.title == "[UnitedCron] 已恢复 · 运行失败" and text.lang == "zh-CN"
    assert text.summary == "规则 nightly（7）在节点 a1 上：已恢复成功（运行 7-3）"
    assert ("分组", "ops (#3)") in text.facts and text.note == "另有 4 条同类告警因限流未发送。"
    alert = chat_text(ALERT, phrases, words.reason).summary
    assert alert == "规则 nightly（7）在节点 a1 上：运行失败，退出码 2（运行 7-1）"
    assert summary_in(RECOVERY, phrases, words.reason).startswith("已恢复：规则 nightly")
    assert summary_in(RECOVERY) == RECOVERY["summary"] and summary_in(ALERT) == ALERT["summary"]


# ------------------------------------------------------------------------------ layouts

TEXT = ChatText("alert", "[UnitedCron] ALERT · run failed", "a <b> & c", (("rule", "r_1"),), "n")


def test_dingtalk_markdown_names_those_it_ats():
    """Markdown with a title; the @s are listed in `at` and written in the text."""
    body = chat.dingtalk_message(TEXT, Mentions(("138",), ("u1",), everyone=True))
    assert body["msgtype"] == "markdown" and body["markdown"]["title"] == TEXT.title
    assert body["markdown"]["text"].splitlines() == [
        f"#### {TEXT.title}",
        "",
        "a <b> & c",
        "",
        "- **rule**: r_1",
        "",
        "> n",
        "",
        "@138 @u1 @all",
    ]
    assert body["at"] == {"atMobiles": ["138"], "atUserIds": ["u1"], "isAtAll": True}
    assert chat.dingtalk_message(TEXT)["at"] == {"atMobiles": [], "atUserIds": [], "isAtAll": False}


@pytest.mark.parametrize(
    ("mentions", "lists"),
    [
        (Mentions(), {}),
        (Mentions(("138",)), {"mentioned_mobile_list": ["138"]}),
        (Mentions((), ("u1",), True), {"mentioned_list": ["u1", "@all"]}),
    ],
)
def test_wecom_text_with_its_mention_lists(mentions: Mentions, lists: dict[str, Any]):
    """Text (its markdown cannot @ by phone), with only the mention lists that are needed."""
    body = chat.wecom_message(TEXT, mentions)
    assert body["msgtype"] == "text"
    assert body["text"] == {"content": "\n".join(plain_lines(TEXT))} | lists


def test_wecom_content_stays_within_2048_bytes_of_utf8():
    """A long Chinese summary is cut on a character boundary, within WeCom's byte limit."""
    text = ChatText("alert", "t", "运行失败" * 400, ())
    content = chat.wecom_message(text)["text"]["content"]
    assert len(content.encode()) <= 2048 and content.endswith("…")
    content.encode().decode()  # whole characters only


def test_feishu_post_and_slack_blocks():
    """Feishu: a post with the title and a text paragraph per line. Slack: `text` for the
    notification, blocks for the message, with &, <, > sent as entities."""
    zh = chat.feishu_message(ChatText("alert", "标题", "摘要", (), lang="zh-CN"))
    assert list(zh["content"]["post"]) == ["zh_cn"]
    post = chat.feishu_message(TEXT)["content"]["post"]["en_us"]
    assert post["title"] == TEXT.title
    assert [p[0]["text"] for p in post["content"]] == ["a <b> & c", "rule: r_1", "n"]
    slack = chat.slack_message(TEXT)
    assert slack["text"] == ":rotating_light: [UnitedCron] ALERT · run failed: a &lt;b&gt; &amp; c"
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "section", "context"]
    assert slack["blocks"][1]["text"] == {"type": "mrkdwn", "text": "a &lt;b&gt; &amp; c"}
    assert slack["blocks"][2]["text"]["text"] == "*rule*: r_1"


# ------------------------------------------------------------------------------ replies


@pytest.mark.parametrize(
    ("kind", "status", "body", "problem"),
    [
        ("dingtalk", 200, b'{"errcode":0,"errmsg":"ok"}', None),
        (
            "dingtalk",
            200,
            b'{"errcode":310000,"errmsg":"sign not match"}',
            "DingTalk answered errcode 310000: sign not match",
        ),
        ("dingtalk", 200, b"<html>", "DingTalk answered something other than its JSON: <html>"),
        ("dingtalk", 502, b"", "DingTalk answered HTTP 502: (empty)"),
        ("wecom", 200, b'{"errcode":0,"errmsg":"ok"}', None),
        (
            "wecom",
            200,
            b'{"errcode":93000,"errmsg":"invalid webhook url"}',
            "WeCom answered errcode 93000: invalid webhook url",
        ),
        ("feishu", 200, b'{"code":0,"data":{},"msg":"success"}', None),
        ("feishu", 200, b'{"StatusCode":0,"StatusMessage":"success"}', None),
        (
            "feishu",
            200,
            b'{"code":19021,"msg":"sign match fail"}',
            "Feishu answered code 19021: sign match fail",
        ),
        ("feishu", 200, b"[]", "Feishu answered something other than its JSON: []"),
        ("slack", 200, b"ok", None),
        ("slack", 400, b"invalid_payload", "Slack answered HTTP 400: invalid_payload"),
        ("slack", 404, b"no_service", "Slack answered HTTP 404: no_service"),
        ("slack", 200, b"", "Slack answered HTTP 200: (empty)"),
    ],
)
def test_reply_problem(kind: str, status: int, body: bytes, problem: str | None):
    """Each platform's success reply is success; any other reply is an error in its words."""
    assert chat.reply_problem(kind, status, body) == problem


# ------------------------------------------------------------------------------ fields


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("", Mentions()),
        ("13800001111, @ops.lead, all", Mentions(("13800001111",), ("ops.lead",), True)),
        ("+86-138-0000-1111\nalice,alice", Mentions(("+86-138-0000-1111",), ("alice",))),
        ("@ALL", Mentions(everyone=True)),
    ],
)
def test_parse_mentions(text: str, mentions: Mentions):
    """Phone numbers, user ids (a leading @ dropped), `all`; repeated ones once."""
    assert chat.parse_mentions(text) == mentions
    assert chat.parse_mentions(chat.mentions_text(mentions)) == mentions


@pytest.mark.parametrize("text", ["bob smith", "<script>", "a," * 21, "-x"])
def test_bad_mentions_are_refused(text: str):
    """Anything that is no phone number, user id or `all`, or more than 20, is refused."""
    with pytest.raises(ValueError, match=r"neither|at most"):
        chat.parse_mentions(text)


@pytest.mark.parametrize(
    ("kind", "url", "problem"),
    [
        ("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=abc", None),
        ("dingtalk", "https://oapi.dingtalk.com/robot/send", "access_token"),
        ("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=a&sign=x", "signed when"),
        ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", None),
        ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send", "key="),
        ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/abc", None),
        ("feishu", "https://open.larksuite.com/open-apis/bot/v2/hook/abc", None),
        ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/", "hook"),
        ("slack", "https://hooks.slack.com/services/T/B/x", None),
        ("slack", "https://hooks.slack.com/", "services"),
    ],
)
def test_url_shape(kind: str, url: str, problem: str | None):
    """Each robot's URL has its platform's path and credential; the host is not checked."""
    found = chat.url_shape_problem(kind, url)
    assert found is None if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    ("kind", "url", "shown"),
    [
        (
            "dingtalk",
            "https://oapi.dingtalk.com/robot/send?access_token=abc",
            "https://oapi.dingtalk.com/robot/send?access_token=***",
        ),
        (
            "wecom",
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k&x=1",
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***&x=***",
        ),
        (
            "feishu",
            "https://open.feishu.cn/open-apis/bot/v2/hook/abc",
            "https://open.feishu.cn/open-apis/bot/v2/hook/***",
        ),
        ("slack", "https://hooks.slack.com/services/T/B/x", "https://hooks.slack.com/services/***"),
        ("webhook", "https://h.example/x?token=1", "https://h.example/x?token=1"),
    ],
)
def test_redacted(kind: str, url: str, shown: str):
    """A robot's URL without its credential; other kinds' targets as they are."""
    assert chat.redacted(kind, url) == shown


@pytest.mark.parametrize(
    ("url", "resolved", "allowed", "refused"),
    [
        ("https://robot.example/x", ["93.184.216.34"], "", False),
        ("http://robot.example/x", ["93.184.216.34"], "", True),
        ("http://robot.example/x", [], "10.0.0.0/8", True),  # unknown now: not proven inside
        ("http://robot.example/x", ["10.1.2.3"], "10.0.0.0/8", False),
        ("http://robot.example/x", ["10.1.2.3", "93.184.216.34"], "10.0.0.0/8", True),
        ("http://127.0.0.1:8/x", [], "127.0.0.0/8", False),
    ],
)
def test_plain_http_only_inside_the_allowed_networks(
    url: str, resolved: list[str], allowed: str, refused: bool
):
    """A robot's URL holds its credential: http:// only when every address is allowed."""
    problem = plain_http_problem(url, resolved, parse_networks(allowed))
    assert (problem is not None) == refused


def test_every_chat_kind_is_a_channel_kind():
    """The chat platforms are kinds of the one vocabulary of channel kinds."""
    assert set(chat.NAMES) <= set(KINDS)
