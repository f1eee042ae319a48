"""Fake agents for the compromised-host tests: real protocol, the cluster secret, any name."""

from __future__ import annotations

import asyncio
import contextlib

from protocol.messages import AgentState, Exec, Message, Ping, Pong, Register
from protocol.stream import Connection, accept_handshake, open_handshake
from tests.integration.cluster import SECRET


class FakeAgent:
    """Listens like an agent named `name`: proves itself with the secret, says its state,
    sends what is put in `reports` (once), answers pings and keeps the execs it receives."""

    def __init__(self, name: str = "web-1") -> None:
        self.name = name
        self.execs: list[Exec] = []
        self.reports: asyncio.Queue[list[Message]] = asyncio.Queue()
        self.server: asyncio.Server | None = None
        self.connected = asyncio.Event()  # set at each handshake with a center
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> int:
        return await self.listen(0)

    async def __aexit__(self, *exc: object) -> None:
        await self.vanish()

    async def listen(self, port: int) -> int:
        """Listen (again) on `port`, 0 for any; returns the port."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        return int(self.server.sockets[0].getsockname()[1])

    async def vanish(self) -> None:
        """Go silent like a host that died: stop listening, drop every connection."""
        assert self.server is not None
        self.server.close()
        self.connected.clear()
        for writer in list(self._writers):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._talk(Connection(reader, writer))
        finally:
            self._writers.discard(writer)

    async def _talk(self, conn: Connection) -> None:
        with contextlib.suppress(Exception):
            await accept_handshake(conn, (SECRET.encode(),), name=self.name, expect_role="center")
            conn.send(AgentState(epoch=0, running=[], agent_name=self.name))
            await conn.drain()
            self.connected.set()
            sender = asyncio.create_task(self._send_reports(conn))
            try:
                while True:
                    message = await conn.recv()
                    if isinstance(message, Ping):
                        conn.send(Pong(sent_ms=message.sent_ms))
                        await conn.drain()
                    elif isinstance(message, Exec):
                        self.execs.append(message)
            finally:
                sender.cancel()
        await conn.close()

    async def _send_reports(self, conn: Connection) -> None:
        conn.send_many(await self.reports.get())
        await conn.drain()


async def register_as(center_port: int, name: str, port: int) -> None:
    """Register with a center as agent `name` at `port` (no agent key)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", center_port)
    conn = Connection(reader, writer)
    try:
        await open_handshake(conn, (SECRET.encode(),), role="agent", name=name)
        conn.send(Register(name=name, host="127.0.0.1", port=port))
        await conn.drain()
        await conn.recv()
    finally:
        await conn.close()
