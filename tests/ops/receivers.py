"""Real receivers for alert tests: an HTTP webhook server and an SMTP server, on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from center.alerts.model import sign

TIMEOUT_S = 10.0


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    def signed_with(self, secret: str) -> bool:
        return self.headers.get("x-unitedcron-signature") == sign(secret, self.body)


# The receivers listen on loopback, where alerts may go only if the center (and the admin)
# allow it: the tests that send to them say so with this setting.
LOCAL_TARGETS = {"alert_allowed_networks": "127.0.0.1/32"}


@dataclass
class WebhookReceiver:
    """Accepts POSTs, answers `status` (settable), and queues what it received."""

    port: int = 0
    status: int = 200
    received: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def next(self, timeout_s: float = 30) -> Delivery:
        async with asyncio.timeout(timeout_s):
            return await self.received.get()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(TIMEOUT_S):
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in head[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self.status
                if status == 200:
                    self.received.put_nowait(Delivery(head[0].split(" ")[1], headers, body))
                reply = f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                writer.write(reply.encode())
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = int(server.sockets[0].getsockname()[1])
    try:
        yield receiver
    finally:
        server.close()
        async with asyncio.timeout(TIMEOUT_S):
            await server.wait_closed()


@dataclass
class MailReceiver:
    """An aiosmtpd handler: every message it accepts goes to a queue."""

    port: int = 0
    received: asyncio.Queue[tuple[Envelope, Message]] = field(default_factory=asyncio.Queue)

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.received.put_nowait((envelope, message_from_bytes(raw)))
        return "250 OK"

    async def next(self, timeout_s: float = 30) -> tuple[Envelope, Message]:
        async with asyncio.timeout(timeout_s):
            return await self.received.get()


@contextlib.asynccontextmanager
async def smtp_receiver() -> AsyncIterator[MailReceiver]:
    """aiosmtpd's SMTP protocol served on this test's own event loop, port 0."""
    receiver = MailReceiver()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(receiver), "127.0.0.1", 0)
    receiver.port = int(server.sockets[0].getsockname()[1])
    try:
        yield receiver
    finally:
        server.close()
        async with asyncio.timeout(TIMEOUT_S):
            await server.wait_closed()
