"""Delivering one notification: a signed JSON POST (webhook), a plain-text email (SMTP), or a
chat robot's message (DingTalk, WeCom, Feishu, Slack; see center.alerts.chat), in the
channel's language (the webhook's JSON keys stay; its `summary` is translated)."""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from center.alerts.chat import Robot, chat_request, parse_mentions, redacted, reply_problem
from center.alerts.chat_text import ENGLISH, phrases_in, summary_in
from center.alerts.model import CHAT_KINDS, EMAIL, SIGNATURE_HEADER, WEBHOOK, body_bytes, sign
from center.alerts.pinned import PostFailed, exchange, post
from center.alerts.targets import Network, plain_http_problem, target_problem
from i18n.catalogs import Catalog, catalog
from i18n.languages import DEFAULT, parse_language
from protocol.clock import now_us

USER_AGENT = "UnitedCron-alerts/1"


class SendError(Exception):
    """A notification could not be delivered; the message says why (retried later)."""


class TargetRefused(SendError):
    """The target resolves to an address alerts may not go to (loopback, private, …)."""


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int = 25
    sender: str = "unitedcron@localhost"
    user: str = ""
    password: str = ""
    starttls: bool = False


@dataclass(frozen=True, slots=True)
class Destination:
    """Where one channel sends: its kind, its URL or addresses, its signing secret, and whom
    a chat robot @s."""

    kind: str
    target: str
    secret: str = ""
    mentions: str = ""
    language: str = "en"  # en or zh-CN (the channel's, else the center's alert_language)


@dataclass(frozen=True, slots=True)
class Wording:
    """An alert's words in one language: the phrase table and the catalog (for the summary)."""

    phrases: Mapping[str, str]
    words: Catalog

    @classmethod
    def of(cls, language: str) -> Wording:
        words = catalog(parse_language(language) or DEFAULT)
        return cls(phrases_in(words.language.value, words.gettext), words)

    def localized(self, data: dict[str, Any]) -> dict[str, Any]:
        """The payload with its summary in this language; every key and other value kept."""
        return data | {"summary": summary_in(data, self.phrases, self.words.reason)}


# All use the standard library in a worker thread, bounded by a timeout: none blocks the
# center's event loop, and no HTTP or SMTP client library is needed.
async def deliver(
    to: Destination,
    data: dict[str, Any],
    smtp: SmtpSettings,
    timeout_s: float,
    allowed: Sequence[Network] = (),
) -> None:
    """Send `data` to one channel; SendError says what went wrong, TargetRefused that the
    URL's host is (or resolves to) an address outside the public ones and `allowed`."""
    if to.kind not in (WEBHOOK, EMAIL, *CHAT_KINDS):
        raise SendError(f"unknown channel kind {to.kind!r}")
    wording = Wording.of(to.language)
    try:
        async with asyncio.timeout(timeout_s + 1):
            if to.kind == WEBHOOK:
                body = body_bytes(wording.localized(data))
                ips = await checked_addresses(to.target, allowed)
                await asyncio.to_thread(_post_webhook, to.target, ips, to.secret, body, timeout_s)
            elif to.kind == EMAIL:
                message = (to.target, data, smtp, timeout_s, wording)
                await asyncio.to_thread(_send_email, *message)
            else:
                await _tell_robot(to, data, timeout_s, allowed, wording)
    except TimeoutError:
        raise SendError(f"no answer within {timeout_s} s") from None


async def _tell_robot(
    to: Destination,
    data: dict[str, Any],
    timeout_s: float,
    allowed: Sequence[Network],
    wording: Wording,
) -> None:
    """A chat robot: the platform's message, signed now (its clock allows an hour), to the
    checked addresses; the platform's own answer decides whether it was delivered."""
    label = redacted(to.kind, to.target)
    ips = await checked_addresses(to.target, allowed, label)
    problem = plain_http_problem(to.target, ips, allowed)
    if problem is not None:
        raise TargetRefused(f"{label}: {problem}")
    try:
        robot = Robot(to.kind, to.target, to.secret, parse_mentions(to.mentions))
    except ValueError as exc:
        raise SendError(f"mentions: {exc}") from None
    request = chat_request(robot, data, now_us(), wording.phrases, wording.words.reason)
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
    try:
        answer = await asyncio.to_thread(
            exchange, request.url, ips, request.body, headers, timeout_s, label=label
        )
    except PostFailed as exc:
        raise SendError(str(exc)) from None
    problem = reply_problem(to.kind, answer.status, answer.body)
    if problem is not None:
        raise SendError(problem)


def webhook_headers(secret: str, body: bytes, event: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-UnitedCron-Event": event,
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return headers


async def checked_addresses(
    url: str, allowed: Sequence[Network], label: str | None = None
) -> list[str]:
    """The addresses of the URL's host, resolved once, every one of them checked: the POST
    connects to these, never to what a second lookup might say. `label` stands for the URL
    in errors when the URL holds a secret."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise SendError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SendError(f"not an http(s) URL: {(label or url)[:100]!r}")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError) as exc:
        raise SendError(f"cannot resolve {parts.hostname[:100]}: {exc}") from None
    ips = list(dict.fromkeys(str(info[4][0]) for info in infos))
    problem = target_problem(url, ips, allowed)
    if problem is not None:
        raise TargetRefused(problem)
    return ips


def _post_webhook(url: str, ips: list[str], secret: str, body: bytes, timeout_s: float) -> None:
    event = json.loads(body).get("event", "")
    try:
        post(url, ips, body, webhook_headers(secret, body, event), timeout_s)
    except PostFailed as exc:
        raise SendError(str(exc)) from None


def email_message(
    to: list[str], data: dict[str, Any], sender: str, wording: Wording | None = None
) -> EmailMessage:
    """A plain-text email in the wording's language (the JSON at its end as the webhook's)."""
    phrases = wording.phrases if wording else ENGLISH
    event = wording.words.gettext(data["event"]) if wording else data["event"]
    data = wording.localized(data) if wording else data
    message = EmailMessage()
    label = phrases.get(f"state.{data['state']}", "")
    message["Subject"] = f"[UnitedCron] {label} {event}: {data['summary']}"[:250]
    message["From"] = sender
    message["To"] = ", ".join(to)
    lines = [data["summary"], ""]
    if data.get("suppressed"):
        lines += [phrases["suppressed"].format(count=data["suppressed"]), ""]
    lines += [
        f"{phrases['fact.group']}: {data['group']['name']} ({data['group']['id']})",
        f"{phrases['fact.at']}: {data['at']}",
        "",
        json.dumps(data, indent=2, sort_keys=True, default=str),
    ]
    message.set_content("\n".join(lines))
    return message


def _send_email(
    target: str,
    data: dict[str, Any],
    smtp: SmtpSettings,
    timeout_s: float,
    wording: Wording | None = None,
) -> None:
    to = [a.strip() for a in target.split(",") if a.strip()]
    if not smtp.host:
        raise SendError("no SMTP server configured (UNITEDCRON_CENTER_SMTP_HOST)")
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout_s) as client:
            if smtp.starttls:
                client.starttls()
            if smtp.user:
                client.login(smtp.user, smtp.password)
            client.send_message(email_message(to, data, smtp.sender, wording))
    except (smtplib.SMTPException, OSError) as exc:
        raise SendError(f"SMTP {smtp.host}:{smtp.port}: {exc}") from None
