"""A TCP proxy in the test's event loop that can cut or blackhole the connections through it."""

from __future__ import annotations

import asyncio
import contextlib
import enum

CONNECT_TIMEOUT_S = 3.0
CLOSE_TIMEOUT_S = 5.0
CHUNK_BYTES = 65536


class Mode(enum.Enum):
    """What the proxy does with traffic."""

    FORWARD = "forward"
    REFUSE = "refuse"  # new connections are closed at once
    BLACKHOLE = "blackhole"  # bytes are held back, nothing is closed


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`; `cut()` and `blackhole()` break it for a while."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        self.mode = Mode.FORWARD
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        """Stop listening and reset every connection; returns once their handlers ended."""
        if self._server is not None:
            self._server.close()
        self.restore()
        self._drop_all()
        # Never cancel a handler: on Python 3.11 the stream server's done-callback calls
        # task.exception() on it, which raises for a cancelled task. Closed sockets end them.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CLOSE_TIMEOUT_S)
        if self._server is not None:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._server.wait_closed()

    def cut(self) -> None:
        """Drop every connection (RST) and refuse new ones until `restore()`."""
        self.mode = Mode.REFUSE
        self._drop_all()

    def blackhole(self) -> None:
        """Stop forwarding bytes in both directions without closing anything."""
        self.mode = Mode.BLACKHOLE
        self._flowing.clear()

    def restore(self) -> None:
        """Forward again; bytes held back by a blackhole are delivered, in order."""
        self.mode = Mode.FORWARD
        self._flowing.set()

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode is Mode.REFUSE:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._bridge(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _bridge(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except (OSError, TimeoutError):
            self._close(writer)
            return
        self._writers.add(up_writer)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._close(writer)
            self._close(up_writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy until EOF; held at a blackhole (the EOF too), like a network that stopped
        delivering."""
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(CHUNK_BYTES):
                await self._flowing.wait()
                if writer.transport.is_closing():
                    return
                writer.write(data)
                await writer.drain()
        await self._flowing.wait()

    def _close(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)
        if not writer.transport.is_closing():
            writer.close()
