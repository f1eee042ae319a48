"""Fake agents for the compromised-host tests: real protocol, the cluster secret, any name, and
the built-in PKI's TLS (enrolled like a real agent, or given a certificate by the test)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

from agent.config import AgentConfig
from agent.enrolment import AgentTls
from protocol.errors import TlsNotReady
from protocol.messages import AgentState, Exec, Message, Ping, Pong, Register, Registered
from protocol.stream import Connection, accept_handshake, open_handshake
from protocol.tls import material_context
from tests.integration.cluster import SECRET


class FakeAgent:
    """Listens like an agent named `name`: TLS with whatever certificate it holds, proves
    itself with the secret, says its state, sends what is put in `reports` (once), answers
    pings and keeps the execs it receives."""

    def __init__(self, name: str = "web-1", state_dir: Path | None = None) -> None:
        self.name = name
        self.execs: list[Exec] = []
        self.reports: asyncio.Queue[list[Message]] = asyncio.Queue()
        self.server: asyncio.Server | None = None
        self.port = 0
        folder = state_dir or Path(tempfile.mkdtemp(prefix="fake-agent-"))
        config = AgentConfig(secret=SECRET, agent_name=name, agent_state_dir=folder / name)
        self.tls = AgentTls(config)
        self.tls.start()
        self._center_port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()  # set at each handshake with a center
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> int:
        return await self.listen(0)

    async def __aexit__(self, *exc: object) -> None:
        await self.vanish()
        for task in self._tasks:
            task.cancel()

    async def listen(self, port: int) -> int:
        """Listen (again) on `port`, 0 for any; returns the port."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self.port

    async def vanish(self) -> None:
        """Go silent like a host that died: stop listening, drop every connection."""
        assert self.server is not None
        self.server.close()
        self.connected.clear()
        for writer in list(self._writers):
            writer.transport.abort()
        await self.server.wait_closed()

    async def register(self, center_port: int) -> Registered:
        """Register (with a CSR) as a real agent would, and keep the certificate that comes."""
        self._center_port = center_port
        context = self.tls.registration_context()
        reader, writer = await asyncio.open_connection("127.0.0.1", center_port, ssl=context)
        conn = Connection(reader, writer)
        try:
            await open_handshake(conn, (SECRET.encode(),), role="agent", name=self.name)
            conn.send(Register(name=self.name, host="127.0.0.1", port=self.port, csr=self.tls.csr))
            await conn.drain()
            reply = await conn.recv()
        finally:
            await conn.close()
        assert isinstance(reply, Registered), reply
        self.tls.accept(reply)
        return reply

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            context = self.tls.link.server_context()
        except TlsNotReady:  # dialled before it had a certificate: approved, so fetch it
            if self._center_port:
                task = asyncio.create_task(self.register(self._center_port))
                self._tasks.add(task)
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            with contextlib.suppress(Exception):
                await writer.start_tls(context)
                conn = Connection(reader, writer)
                await self._session(conn)
                await conn.close()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _session(self, conn: Connection) -> None:
        await accept_handshake(
            conn,
            (SECRET.encode(),),
            name=self.name,
            expect_role="center",
            binding=self.tls.link.binding,
        )
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

    async def _send_reports(self, conn: Connection) -> None:
        # One frame at a time, as fast as the link takes them: the test's process (which holds
        # the center too) must not buffer a whole flood in this fake's transport.
        for message in await self.reports.get():
            conn.send(message)
            await conn.drain()


async def register_as(center_port: int, name: str, port: int) -> None:
    """Register with a center as agent `name` at `port` (no agent key, no CSR)."""
    context = material_context(None, "", server=False)
    reader, writer = await asyncio.open_connection("127.0.0.1", center_port, ssl=context)
    conn = Connection(reader, writer)
    try:
        await open_handshake(conn, (SECRET.encode(),), role="agent", name=name)
        conn.send(Register(name=name, host="127.0.0.1", port=port))
        await conn.drain()
        await conn.recv()
    finally:
        await conn.close()
