"""An on-path attacker between a center and an agent: a TCP relay that forwards both ways,
keeps what it saw, and can put bytes of its own into the stream towards the agent."""

from __future__ import annotations

import asyncio
import contextlib


class Relay:
    def __init__(self) -> None:
        self.target_port = 0  # the agent's real port, set once it is bound
        self.seen = bytearray()  # everything that passed, both ways
        self.connections = 0
        self._towards_agent: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def inject(self, data: bytes) -> None:
        """Write `data` into the live center-to-agent stream, between the center's records."""
        assert self._towards_agent is not None, "no connection to inject into"
        self._towards_agent.write(data)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._towards_agent = up_writer
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
            self._tasks.discard(task)
        for end in (writer, up_writer):
            end.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                self.seen += data
                writer.write(data)
                await writer.drain()
