"""Alert channels: group admins manage their groups' channels; members see them (a chat
robot's URL, which holds its credential, only with the credential hidden)."""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
import urllib.parse
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin.actor import Actor
from admin.errors import Conflict, Invalid, NotFound
from admin.permissions import Action
from admin.queries import alerts, groups
from admin.services import audited
from center.alerts.chat import NAMES, mentions_text, parse_mentions, redacted, url_shape_problem
from center.alerts.model import (
    CHAT_KINDS,
    DINGTALK,
    EMAIL,
    EVENTS,
    KINDS,
    MENTION_KINDS,
    SIGNED_CHAT_KINDS,
    WEBHOOK,
    channel_from_row,
    notification_row,
    probe_payload,
)
from center.alerts.targets import Network, plain_http_problem, target_problem
from i18n.languages import Language
from protocol.clock import now_us

_EMAIL_RE = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+$")
_HOST_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$")
MAX_THROTTLE_S = 7 * 86400
MAX_GRACE_S = 86400
RESOLVE_TIMEOUT_S = 3.0
DEFAULTS: dict[str, Any] = {
    "kind": WEBHOOK,
    "secret": None,
    "mentions": "",
    "language": "",
    "events": list(EVENTS),
    "throttle_s": 3600,
    "grace_s": 60,
    "status": 1,
}


def _text(values: dict[str, Any], name: str, limit: int) -> str:
    value = values.get(name)
    if not isinstance(value, str):
        raise Invalid(name, "must be text")
    value = value.strip()
    if len(value) > limit:
        raise Invalid(name, f"is longer than {limit} characters")
    if any(ch < " " or ch == "\x7f" for ch in value):
        raise Invalid(name, "must not contain control characters (newlines, tabs, …)")
    return value


def _whole(values: dict[str, Any], name: str, low: int, high: int) -> int:
    value = values.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Invalid(name, f"must be a whole number, {low}-{high}")
    return value


def _events(value: Any) -> str:
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Invalid("events", "must be a list of event names")
    picked = [n.strip() for n in names if n.strip()]
    for name in picked:
        if name not in EVENTS:
            raise Invalid("events", f"{name[:40]!r} is not one of {', '.join(EVENTS)}")
    if not picked:
        raise Invalid("events", "pick at least one event")
    return ",".join(e for e in EVENTS if e in picked)


def _target(kind: str, target: str) -> str:
    if kind != EMAIL:
        problem = url_problem(target)
        if problem is None and kind in CHAT_KINDS:
            problem = url_shape_problem(kind, target)
        if problem is not None:
            raise Invalid("target", problem)
        return target
    addresses = [a.strip() for a in target.split(",") if a.strip()]
    bad = [a for a in addresses if not _EMAIL_RE.match(a)]
    if not addresses or bad:
        raise Invalid("target", f"{(bad or [''])[0][:60]!r} is not an email address")
    return ", ".join(addresses)


def url_problem(url: str) -> str | None:
    """Why `url` is not a webhook URL the sender can use (None: it is)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # ValueError for a port that is no number in 0-65535
    except ValueError as exc:
        return f"is not a valid URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname or not _HOST_RE.match(parts.hostname):
        return "has no valid host name"
    if port == 0 or parts.username is not None or parts.password is not None:
        return "must name a host and port only (no user:password@, no port 0)"
    if any(ch.isspace() for ch in url):
        return "must not contain spaces"
    return None


async def _resolve(host: str) -> list[str]:
    """The host's addresses now, or [] if it does not resolve (the center checks again, and
    refuses it then, whenever it sends)."""
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM
            )
    except (OSError, UnicodeError, TimeoutError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_target(columns: dict[str, Any], allowed: Sequence[Network]) -> None:
    """Invalid("target") if a webhook's or a chat robot's host is, or resolves to, an address
    alerts may not reach: loopback, private, link-local, … outside
    UNITEDCRON_ALERT_ALLOWED_NETWORKS (the process's setting, which no group admin can
    change); or if a chat robot's URL, which holds its credential, is plain http:// to a
    host outside those networks."""
    if columns["kind"] == EMAIL:
        return
    url = columns["target"]
    addresses = await _resolve(urllib.parse.urlsplit(url).hostname or "")
    problem = target_problem(url, addresses, allowed)
    if problem is None and columns["kind"] in CHAT_KINDS:
        problem = plain_http_problem(url, addresses, allowed)
    if problem is not None:
        raise Invalid("target", problem)


def _secret(kind: str, secret: str) -> str:
    """A chat robot's secret: DingTalk's starts with SEC; WeCom and Slack robots sign nothing."""
    if secret and kind == DINGTALK and not secret.startswith("SEC"):
        raise Invalid("secret", "a DingTalk robot's secret starts with SEC (its security settings)")
    if secret and kind in CHAT_KINDS and kind not in SIGNED_CHAT_KINDS:
        raise Invalid(
            "secret", f"{NAMES[kind]} robots sign nothing: leave it empty (the URL is the secret)"
        )
    return secret


def _mentions(kind: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise Invalid("mentions", "must be text: phone numbers, user ids or all, comma-separated")
    if kind not in MENTION_KINDS:
        raise Invalid("mentions", "only DingTalk and WeCom robots can @ people: leave it empty")
    try:
        return mentions_text(parse_mentions(_text({"mentions": value}, "mentions", 500)))
    except ValueError as exc:
        raise Invalid("mentions", str(exc)) from None


def _language(value: Any) -> str:
    """The language of the channel's messages; "" leaves it to the center's alert_language."""
    if value is None or value == "":
        return ""
    if value not in tuple(Language):
        raise Invalid("language", "must be en or zh-CN (or empty: the center's default)")
    return str(value)


def checked(values: dict[str, Any]) -> dict[str, Any]:
    """The columns to store, or Invalid naming the field."""
    out: dict[str, Any] = {"name": _text(values, "name", 64)}
    if not out["name"]:
        raise Invalid("name", "is empty: give the channel a name")
    kind = values.get("kind")
    if kind not in KINDS:
        raise Invalid("kind", f"must be one of {', '.join(KINDS)}")
    out["kind"] = kind
    out["target"] = _target(kind, _text(values, "target", 1000))
    out["events"] = _events(values.get("events"))
    out["throttle_s"] = _whole(values, "throttle_s", 0, MAX_THROTTLE_S)
    out["grace_s"] = _whole(values, "grace_s", 1, MAX_GRACE_S)
    if values.get("status") not in (0, 1):
        raise Invalid("status", "must be 1 (on) or 0 (off)")
    out["status"] = values["status"]
    out["mentions"] = _mentions(kind, values.get("mentions"))
    out["language"] = _language(values.get("language"))
    if values.get("secret") is not None:
        out["secret"] = _secret(kind, _text(values, "secret", 128))
    elif kind in CHAT_KINDS and kind not in SIGNED_CHAT_KINDS:
        out["secret"] = ""
    return out


def _fresh_secret(columns: dict[str, Any]) -> dict[str, Any]:
    """A new channel's (or a new kind's) secret when none was given: a random one for a
    webhook, none for a chat robot (it then relies on its platform's other safeguards)."""
    if columns.get("secret"):
        return columns
    return columns | {"secret": secrets.token_urlsafe(32) if columns["kind"] == WEBHOOK else ""}


def _merged(before: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The channel after `changes`. A new kind takes neither the old secret (another
    platform's, or the webhook's random key) nor @mentions it cannot use."""
    merged = before | {"events": before["events"]} | changes
    if merged["kind"] != before["kind"]:
        if "secret" not in changes:
            merged["secret"] = None
        if "mentions" not in changes and merged["kind"] not in MENTION_KINDS:
            merged["mentions"] = ""
    return merged


def shown(actor: Actor, row: dict[str, Any]) -> dict[str, Any]:
    """A channel as the API and pages show it: the secret only to the group's admins."""
    out = dict(row) | {"events": [e for e in row["events"].split(",") if e]}
    out["has_secret"] = bool(row["secret"])
    if not actor.can(Action.EDIT, row["gid"]):
        out.pop("secret")
        out["target"] = redacted(row["kind"], row["target"])
    return out


def _audit_view(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    hidden = {"secret": "***" if row.get("secret") else ""}
    return row | hidden | {"target": redacted(row["kind"], row["target"])}


async def _visible(
    conn: AsyncConnection, actor: Actor, channel_id: int, action: Action
) -> dict[str, Any]:
    row = await alerts.channel_by_id(conn, channel_id)
    if row is None:
        raise NotFound("no such alert channel")
    actor.require(action, row["gid"], "alert channel")
    return row


async def _group(conn: AsyncConnection, actor: Actor, gid: Any) -> int:
    if not isinstance(gid, int) or isinstance(gid, bool):
        raise Invalid("gid", "give the id of a group")
    if not actor.can(Action.VIEW, gid) or await groups.group_by_id(conn, gid) is None:
        raise Invalid("gid", f"no such group: {gid}")
    actor.require(Action.EDIT, gid, "group")
    return gid


async def _name_free(conn: AsyncConnection, gid: int, name: str, channel_id: int | None) -> None:
    found = await alerts.channel_by_name(conn, gid, name)
    if found is not None and found["id"] != channel_id:
        raise Conflict(f"the group has a channel named {name!r} already", "name")


async def list_channels(
    engine: AsyncEngine, actor: Actor, gid: int | None = None
) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await alerts.list_channels(conn, actor.scope, gid)
    return [shown(actor, r) for r in rows]


async def get_channel(engine: AsyncEngine, actor: Actor, channel_id: int) -> dict[str, Any]:
    """The channel, its open conditions and its latest notifications."""
    async with engine.connect() as conn:
        row = shown(actor, await _visible(conn, actor, channel_id, Action.VIEW))
        row["open"] = await alerts.open_states(conn, channel_id)
        row["notifications"] = await alerts.notifications(conn, channel_id, 20)
    return row


async def create_channel(
    engine: AsyncEngine, actor: Actor, values: dict[str, Any], allowed: Sequence[Network] = ()
) -> dict[str, Any]:
    """Needs the admin role in `gid`. A webhook without a secret gets a random one; its
    target (and a chat robot's) must be public, or in the `allowed` networks."""
    columns = _fresh_secret(checked(DEFAULTS | values))
    await check_target(columns, allowed)
    now = now_us()
    async with engine.begin() as conn:
        gid = await _group(conn, actor, values.get("gid"))
        await _name_free(conn, gid, columns["name"], None)
        channel_id = await alerts.insert_channel(conn, columns | {"gid": gid}, now)
        after = await alerts.channel_by_id(conn, channel_id)
        target = ("alert_channel", channel_id, gid)
        await audited(conn, actor, now, "alert.create", target, after=_audit_view(after))
    return shown(actor, after or {})


async def update_channel(
    engine: AsyncEngine,
    actor: Actor,
    channel_id: int,
    changes: dict[str, Any],
    allowed: Sequence[Network] = (),
) -> dict[str, Any]:
    now = now_us()
    async with engine.begin() as conn:
        before = await _visible(conn, actor, channel_id, Action.EDIT)
        merged = _merged(before, changes)
        columns = checked(merged)
        if merged["kind"] != before["kind"]:
            columns = _fresh_secret(columns)
        await check_target(columns, allowed)
        await _name_free(conn, before["gid"], columns["name"], channel_id)
        await alerts.update_channel(conn, channel_id, columns, now)
        after = await alerts.channel_by_id(conn, channel_id)
        target = ("alert_channel", channel_id, before["gid"])
        await audited(
            conn,
            actor,
            now,
            "alert.update",
            target,
            before=_audit_view(before),
            after=_audit_view(after),
        )
    return shown(actor, after or {})


async def delete_channel(engine: AsyncEngine, actor: Actor, channel_id: int) -> None:
    now = now_us()
    async with engine.begin() as conn:
        before = await _visible(conn, actor, channel_id, Action.EDIT)
        await alerts.delete_channel(conn, channel_id, now)
        target = ("alert_channel", channel_id, before["gid"])
        await audited(conn, actor, now, "alert.delete", target, before=_audit_view(before))


async def send_test(engine: AsyncEngine, actor: Actor, channel_id: int) -> dict[str, Any]:
    """Queue a test notification; the leader center sends it within seconds."""
    now = now_us()
    async with engine.begin() as conn:
        row = await _visible(conn, actor, channel_id, Action.EDIT)
        data = probe_payload(channel_from_row(row), now)
        note_id = await alerts.insert_notification(conn, notification_row(channel_id, data, now))
        note = await alerts.notification_by_id(conn, note_id)
        target = ("alert_channel", channel_id, row["gid"])
        await audited(conn, actor, now, "alert.test", target, after={"notification": note_id})
    return note or {}
