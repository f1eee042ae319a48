"""Stand-ins for the chat platforms on 127.0.0.1, port 0: each checks a robot's request the way
its platform documents it, written here from the documentation and not from
center.alerts.chat, and answers with that platform's own success or error reply.

* DingTalk: `timestamp` (ms) and `sign` in the query; sign = urlEncode(base64(HmacSHA256(
  key=secret, msg=f"{timestamp}\\n{secret}"))); more than an hour off: refused (errcode 310000).
* WeCom: the `key` query parameter is the credential (errcode 93000 if it is wrong).
* Feishu: `timestamp` (s) and `sign` in the JSON body; sign = base64(HmacSHA256(
  key=f"{timestamp}\\n{secret}", msg=b"")); wrong or an hour off: code 19021.
* Slack: the path is the credential (HTTP 404 `no_service`); success is the text `ok`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

TIMEOUT_S = 10.0
HOUR_S = 3600
TOKEN = "robot-token-0123456789"  # DingTalk's access_token, WeCom's key, Feishu's hook id, Slack's
DINGTALK_SECRET = "SEC0a1b2c3d4e5f60718293a4b5c6d7e8f9"
FEISHU_SECRET = "feishu-signing-secret-7"
Reply = tuple[int, str, bytes]  # HTTP status, content type, body


@dataclass
class ChatRequest:
    """What a stand-in accepted: the path with its query, the headers, the JSON body."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


def _json(data: dict[str, Any]) -> Reply:
    return 200, "application/json", json.dumps(data).encode()


def _hmac_b64(key: bytes, msg: bytes) -> str:
    return base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()


def dingtalk_check(secret: str) -> Callable[[str, dict[str, str], dict[str, Any]], Reply | None]:
    def check(path: str, query: dict[str, str], body: dict[str, Any]) -> Reply | None:
        if path != "/robot/send" or query.get("access_token") != TOKEN:
            return _json({"errcode": 300001, "errmsg": "token is not exist"})
        stamp, sign = query.get("timestamp", ""), query.get("sign", "")
        if not stamp.isdigit() or abs(time.time() * 1000 - int(stamp)) > HOUR_S * 1000:
            return _json({"errcode": 310000, "errmsg": "invalid timestamp"})
        expected = _hmac_b64(secret.encode(), f"{stamp}\n{secret}".encode())
        if not hmac.compare_digest(sign, expected):
            return _json({"errcode": 310000, "errmsg": "sign not match"})
        if body.get("msgtype") not in ("text", "markdown"):
            return _json({"errcode": 40035, "errmsg": "missing msgtype"})
        return None

    return check


def wecom_check(path: str, query: dict[str, str], body: dict[str, Any]) -> Reply | None:
    if path != "/cgi-bin/webhook/send" or query.get("key") != TOKEN:
        return _json({"errcode": 93000, "errmsg": "invalid webhook url, hint: [stand-in]"})
    content = body.get("text", {}).get("content", "") if body.get("msgtype") == "text" else ""
    if not content or len(content.encode()) > 2048:
        return _json({"errcode": 40058, "errmsg": "invalid content size"})
    return None


def feishu_check(secret: str) -> Callable[[str, dict[str, str], dict[str, Any]], Reply | None]:
    def check(path: str, query: dict[str, str], body: dict[str, Any]) -> Reply | None:
        if path != f"/open-apis/bot/v2/hook/{TOKEN}":
            return _json({"code": 19001, "data": {}, "msg": "param invalid: token invalid"})
        stamp, sign = str(body.get("timestamp", "")), str(body.get("sign", ""))
        expected = _hmac_b64(f"{stamp}\n{secret}".encode(), b"")
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= HOUR_S
        if not fresh or not hmac.compare_digest(sign, expected):
            msg = "sign match fail or timestamp is not within one hour from current time"
            return _json({"code": 19021, "data": {}, "msg": msg})
        if body.get("msg_type") not in ("text", "post", "interactive"):
            return _json({"code": 9499, "data": {}, "msg": "Bad Request"})
        return None

    return check


def slack_check(path: str, query: dict[str, str], body: dict[str, Any]) -> Reply | None:
    if path != f"/services/T000TEST/B000TEST/{TOKEN}":
        return 404, "text/html", b"no_service"
    if not body.get("text") and not body.get("blocks"):
        return 400, "text/html", b"no_text"
    return None


@dataclass
class ChatServer:
    """One platform's stand-in: accepted requests queue in `received`; the rest get the
    platform's error reply (and queue their reply in `refused`)."""

    kind: str
    check: Callable[[str, dict[str, str], dict[str, Any]], Reply | None]
    ok: Reply
    port: int = 0
    received: asyncio.Queue[ChatRequest] = field(default_factory=asyncio.Queue)
    refused: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)

    def url(self, token: str = TOKEN) -> str:
        base = f"http://127.0.0.1:{self.port}"
        return {
            "dingtalk": f"{base}/robot/send?access_token={token}",
            "wecom": f"{base}/cgi-bin/webhook/send?key={token}",
            "feishu": f"{base}/open-apis/bot/v2/hook/{token}",
            "slack": f"{base}/services/T000TEST/B000TEST/{token}",
        }[self.kind]

    async def next(self, timeout_s: float = 30) -> ChatRequest:
        async with asyncio.timeout(timeout_s):
            return await self.received.get()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(TIMEOUT_S):
                request = await _read(reader)
                reply = self.check(request.path, request.query, request.body)
                if reply is None:
                    self.received.put_nowait(request)
                else:
                    self.refused.put_nowait(reply[2])
                status, kind, body = reply or self.ok
                head = (
                    f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                )
                writer.write(head.encode() + body)
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read(reader: asyncio.StreamReader) -> ChatRequest:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {
        k.strip().lower(): v.strip()
        for k, _, v in (line.partition(":") for line in head[1:] if line)
    }
    raw = await reader.readexactly(int(headers.get("content-length", "0")))
    target = urllib.parse.urlsplit(head[0].split(" ")[1])
    # parse_qsl decodes once, as the platform does: a sign sent without URL encoding (its
    # "+" read as a space) no longer matches.
    query = dict(urllib.parse.parse_qsl(target.query, keep_blank_values=True))
    return ChatRequest(target.path, query, headers, json.loads(raw or b"{}"))


def chat_server(kind: str, secret: str = "") -> ChatServer:
    """The stand-in for `kind`, checking signatures with `secret` where the platform signs."""
    ok_errcode = _json({"errcode": 0, "errmsg": "ok"})
    servers = {
        "dingtalk": (dingtalk_check(secret or DINGTALK_SECRET), ok_errcode),
        "wecom": (wecom_check, ok_errcode),
        "feishu": (
            feishu_check(secret or FEISHU_SECRET),
            _json({"code": 0, "data": {}, "msg": "success"}),
        ),
        "slack": (slack_check, (200, "text/html", b"ok")),
    }
    check, ok = servers[kind]
    return ChatServer(kind, check, ok)


@contextlib.asynccontextmanager
async def running_chat_server(kind: str, secret: str = "") -> AsyncIterator[ChatServer]:
    server = chat_server(kind, secret)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = int(listener.sockets[0].getsockname()[1])
    try:
        yield server
    finally:
        listener.close()
        async with asyncio.timeout(TIMEOUT_S):
            await listener.wait_closed()
