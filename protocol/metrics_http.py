"""A minimal asyncio HTTP endpoint serving one Prometheus registry at /metrics."""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

REQUEST_TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 8192


async def start_metrics_server(registry: CollectorRegistry, host: str, port: int) -> asyncio.Server:
    """Serve GET /metrics (anything else: 404); one short request per connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            request_line = head[: min(len(head), MAX_REQUEST_BYTES)].split(b"\r\n", 1)[0]
            parts = request_line.split()
            if len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/metrics":
                _respond(writer, b"200 OK", CONTENT_TYPE_LATEST.encode(), generate_latest(registry))
            else:
                _respond(writer, b"404 Not Found", b"text/plain", b"try /metrics\n")
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, limit=MAX_REQUEST_BYTES)


def _respond(writer: asyncio.StreamWriter, status: bytes, ctype: bytes, body: bytes) -> None:
    writer.write(
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: "
        + ctype
        + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )
