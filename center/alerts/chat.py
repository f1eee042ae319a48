"""Chat robots (pure): each platform's message layout, signature, request and reply.

Where each scheme comes from (the platforms' own documentation):

* DingTalk custom robot: https://open.dingtalk.com/document/robots/customize-robot-security-settings
  ("加签"): `sign` = urlEncode(base64(HmacSHA256(key=secret, msg=timestamp + "\\n" + secret))),
  `timestamp` in milliseconds, both added to the webhook URL's query; a timestamp more than an
  hour from DingTalk's clock is refused. Messages: .../robots/custom-robot-access and
  .../robots/message-types-and-data-format (`msgtype` markdown, `at.atMobiles`/`atUserIds`/
  `isAtAll`). Replies `{"errcode": 0, "errmsg": "ok"}`, else e.g. errcode 310000.
* WeCom (企业微信) group robot: https://developer.work.weixin.qq.com/document/path/91770: no
  signature, the `key` in the URL is the secret; `msgtype` text with `mentioned_list` (user
  ids, "@all") and `mentioned_mobile_list`; content at most 2048 bytes; replies `errcode`.
* Feishu/Lark custom bot: https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot
  ("签名校验"): `sign` = base64(HmacSHA256(key=timestamp + "\\n" + secret, msg="")), the
  `timestamp` in seconds, both fields of the JSON body; more than an hour off is refused with
  `{"code": 19021, "msg": "sign match fail or timestamp is not within one hour ..."}`.
  Messages: `msg_type` post (a title and lines of text tags).
* Slack incoming webhook: https://api.slack.com/messaging/webhooks: no signature, the URL is
  the secret; JSON `text` (the notification's fallback) and `blocks`; the answer is the plain
  text `ok`, or an HTTP error with a word such as `invalid_payload` or `no_service`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from center.alerts.chat_text import ENGLISH, ChatText, Translate, chat_text, plain_lines
from protocol.vocabulary import AlertChannelKind as Kind

NAMES: dict[str, str] = {
    Kind.DINGTALK: "DingTalk",
    Kind.WECOM: "WeCom",
    Kind.FEISHU: "Feishu",
    Kind.SLACK: "Slack",
}
WECOM_MAX_BYTES = 2048  # text.content, in UTF-8 bytes
SLACK_SECTION_MAX = 3000  # characters of a section block's text
SLACK_HEADER_MAX = 150  # characters of a header block's plain text
MAX_MENTIONS = 20
_MOBILE_RE = re.compile(r"^\+?[0-9][0-9-]{4,19}$")
_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_EVERYONE = ("all", "@all")
_FEISHU_LOCALES = {"en": "en_us", "zh-CN": "zh_cn", "ja": "ja_jp"}
_SLACK_EMOJI = {"alert": ":rotating_light:", "recovery": ":white_check_mark:", "test": ":bell:"}


@dataclass(frozen=True, slots=True)
class Mentions:
    """Whom a DingTalk or WeCom robot @s: phone numbers, user ids, or everyone."""

    mobiles: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    everyone: bool = False


@dataclass(frozen=True, slots=True)
class Robot:
    """A chat channel: its platform, its webhook URL, its secret ("" if it signs nothing)."""

    kind: str
    url: str
    secret: str = ""
    mentions: Mentions = Mentions()


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The POST to make: the URL (signed where the platform signs there) and the JSON body."""

    url: str
    body: bytes


def parse_mentions(text: str) -> Mentions:
    """A comma list: `all` (or `@all`), phone numbers, user ids (a leading @ is dropped);
    ValueError names the first entry that is none of those."""
    entries = [e.strip() for e in text.replace("\n", ",").split(",") if e.strip()]
    if len(entries) > MAX_MENTIONS:
        raise ValueError(f"at most {MAX_MENTIONS} people")
    mobiles: list[str] = []
    users: list[str] = []
    everyone = False
    for entry in entries:
        if entry.lower() in _EVERYONE:
            everyone = True
        elif _MOBILE_RE.match(entry):
            mobiles.append(entry)
        elif _USER_RE.match(entry.removeprefix("@")):
            users.append(entry.removeprefix("@"))
        else:
            raise ValueError(f"{entry[:40]!r} is neither a phone number, a user id nor all")
    return Mentions(tuple(dict.fromkeys(mobiles)), tuple(dict.fromkeys(users)), everyone)


def mentions_text(mentions: Mentions) -> str:
    """How the mentions are stored: the canonical comma list."""
    return ", ".join(
        [*(("all",) if mentions.everyone else ()), *mentions.mobiles, *mentions.user_ids]
    )


# ------------------------------------------------------------------------------ signatures


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's `sign` before URL encoding: base64 of HMAC-SHA256 keyed with the secret."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    return base64.b64encode(hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()).decode()


def dingtalk_url(url: str, secret: str, timestamp_ms: int) -> str:
    """The robot's URL with `timestamp` and the URL-encoded `sign` added to its query."""
    parts = urllib.parse.urlsplit(url)
    sign = urllib.parse.quote(dingtalk_sign(secret, timestamp_ms), safe="")
    query = "&".join(q for q in (parts.query, f"timestamp={timestamp_ms}&sign={sign}") if q)
    return urllib.parse.urlunsplit(parts._replace(query=query))


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's `sign`: base64 of HMAC-SHA256 keyed with "timestamp\\nsecret" over nothing
    (the key and the message are the other way round from DingTalk's)."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


# ------------------------------------------------------------------------------ messages


def dingtalk_message(text: ChatText, mentions: Mentions = Mentions()) -> dict[str, Any]:
    """A markdown message; DingTalk highlights an @ only if the text names it as well."""
    lines = [f"#### {text.title}", "", text.summary, ""]
    lines += [f"- **{label}**: {value}" for label, value in text.facts]
    if text.note:
        lines += ["", f"> {text.note}"]
    ats = [f"@{who}" for who in (*mentions.mobiles, *mentions.user_ids)]
    if mentions.everyone:
        ats.append("@all")
    if ats:
        lines += ["", " ".join(ats)]
    at = {
        "atMobiles": list(mentions.mobiles),
        "atUserIds": list(mentions.user_ids),
        "isAtAll": mentions.everyone,
    }
    return {
        "msgtype": "markdown",
        "markdown": {"title": text.title, "text": "\n".join(lines)},
        "at": at,
    }


def _clip_bytes(value: str, limit: int) -> str:
    data = value.encode()
    if len(data) <= limit:
        return value
    return data[: limit - len("…".encode())].decode(errors="ignore") + "…"


def wecom_message(text: ChatText, mentions: Mentions = Mentions()) -> dict[str, Any]:
    """A text message: WeCom's markdown cannot @ by phone number, its text can."""
    users = [*mentions.user_ids, *(["@all"] if mentions.everyone else [])]
    body: dict[str, Any] = {"content": _clip_bytes("\n".join(plain_lines(text)), WECOM_MAX_BYTES)}
    if users:
        body["mentioned_list"] = users
    if mentions.mobiles:
        body["mentioned_mobile_list"] = list(mentions.mobiles)
    return {"msgtype": "text", "text": body}


def feishu_message(text: ChatText) -> dict[str, Any]:
    """A post (rich text): the title, then one paragraph of text per line, under the locale
    of the text's language (Feishu shows a post in any locale it has)."""
    lines = plain_lines(text)[1:]
    paragraphs = [[{"tag": "text", "text": line}] for line in lines]
    locale = _FEISHU_LOCALES.get(text.lang, "en_us")
    post = {locale: {"title": text.title, "content": paragraphs}}
    return {"msg_type": "post", "content": {"post": post}}


def _slack_escape(value: str) -> str:
    """Slack's mrkdwn gives &, < and > a meaning: they are sent as entities."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(text: ChatText) -> dict[str, Any]:
    """`text` for the notification (and clients without blocks), blocks for the message."""
    emoji = _SLACK_EMOJI.get(text.state, "")
    facts = "\n".join(f"*{_slack_escape(k)}*: {_slack_escape(v)}" for k, v in text.facts)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": text.title[:SLACK_HEADER_MAX]}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _slack_escape(text.summary)[:SLACK_SECTION_MAX]},
        },
    ]
    if facts:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": facts[:SLACK_SECTION_MAX]}}
        )
    if text.note:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(text.note)}]}
        )
    fallback = _slack_escape(f"{emoji} {text.title}: {text.summary}".strip())
    return {"text": fallback, "blocks": blocks}


# ------------------------------------------------------------------------------ requests


def _json(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def chat_request(
    robot: Robot,
    data: Mapping[str, Any],
    now_us: int,
    phrases: Mapping[str, str] = ENGLISH,
    reason: Translate = str,
) -> ChatRequest:
    """The POST that tells `robot` about one notification's payload, signed (where the
    platform signs, and if the robot has a secret) at `now_us`, in the language of `phrases`
    (`reason` translates the summary)."""
    text = chat_text(data, phrases, reason)
    kind, url, secret = robot.kind, robot.url, robot.secret
    if kind == Kind.DINGTALK:
        signed = dingtalk_url(url, secret, now_us // 1000) if secret else url
        return ChatRequest(signed, _json(dingtalk_message(text, robot.mentions)))
    if kind == Kind.WECOM:
        return ChatRequest(url, _json(wecom_message(text, robot.mentions)))
    if kind == Kind.FEISHU:
        body = feishu_message(text)
        if secret:
            timestamp_s = now_us // 1_000_000
            body = {"timestamp": str(timestamp_s), "sign": feishu_sign(secret, timestamp_s)} | body
        return ChatRequest(url, _json(body))
    if kind == Kind.SLACK:
        return ChatRequest(url, _json(slack_message(text)))
    raise ValueError(f"{kind!r} is not a chat platform")


# ------------------------------------------------------------------------------ replies


def _snippet(body: bytes) -> str:
    return body[:200].decode(errors="replace").strip() or "(empty)"


def _json_reply(body: bytes) -> Mapping[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, Mapping) else None


def reply_problem(kind: str, status: int, body: bytes) -> str | None:
    """What the platform's answer says went wrong, in its own words (None: delivered).
    DingTalk, WeCom and Feishu answer HTTP 200 with an error code in the JSON."""
    name = NAMES.get(kind, kind)
    if kind == Kind.SLACK:
        if 200 <= status < 300 and body.strip() == b"ok":
            return None
        return f"Slack answered HTTP {status}: {_snippet(body)}"
    if not 200 <= status < 300:
        return f"{name} answered HTTP {status}: {_snippet(body)}"
    reply = _json_reply(body)
    if reply is None:
        return f"{name} answered something other than its JSON: {_snippet(body)}"
    field, text = ("code", "msg") if kind == Kind.FEISHU else ("errcode", "errmsg")
    if kind == Kind.FEISHU and field not in reply:
        field, text = "StatusCode", "StatusMessage"  # the older form of Feishu's answer
    code = reply.get(field)
    if code == 0:
        return None
    return f"{name} answered {field} {code}: {str(reply.get(text, ''))[:300]}"


def redacted(kind: str, url: str) -> str:
    """The robot's URL with its credential hidden (DingTalk's access token, WeCom's key,
    Feishu's hook id, Slack's path): for errors, logs and people who may see a channel but
    not edit it."""
    if kind not in NAMES:
        return url
    parts = urllib.parse.urlsplit(url)
    query = "&".join(f"{k}=***" for k, _ in urllib.parse.parse_qsl(parts.query, True))
    segments = parts.path.split("/")
    path = parts.path
    if kind == Kind.SLACK and len(segments) > 2:  # /services/T…/B…/secret: all of it
        path = "/".join([*segments[:2], "***"])
    elif kind == Kind.FEISHU and len(segments) > 1:  # /open-apis/bot/v2/hook/<id>
        path = "/".join([*segments[:-1], "***"])
    return urllib.parse.urlunsplit(parts._replace(path=path, query=query, fragment=""))


def url_shape_problem(kind: str, url: str) -> str | None:
    """Why `url` is not the shape of a `kind` robot's webhook URL (None: it is). The host is
    not checked: private deployments and relays have their own; the path and query are."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    if kind == Kind.DINGTALK:
        if not query.get("access_token"):
            return "must be the robot's URL, …/robot/send?access_token=…"
        if "timestamp" in query or "sign" in query:
            return "must not carry timestamp or sign: each alert is signed when it is sent"
    elif kind == Kind.WECOM and not query.get("key"):
        return "must be the robot's URL, …/cgi-bin/webhook/send?key=…"
    elif kind == Kind.FEISHU and not re.search(r"/bot/v2/hook/[^/]+$", parts.path):
        return "must be the bot's URL, …/open-apis/bot/v2/hook/…"
    elif kind == Kind.SLACK and parts.path.strip("/").count("/") < 1:
        return "must be the incoming webhook's URL, https://hooks.slack.com/services/…"
    return None
