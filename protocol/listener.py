"""A TCP listener whose connections begin TLS on the raw socket: no byte is read before it.

`asyncio.start_server` starts reading a connection before its handler runs, and on uvloop the
client's first TLS record is then already in the plain stream's buffer when the handler calls
`StreamWriter.start_tls`: the handshake waits for a ClientHello it has swallowed, until the
peer gives up (every registration with a certificate did, on the center's uvloop). Here the
listener only accepts; each handler decides on the bare socket (limits, the context current
now) and `open_accepted` wraps it with TLS from its first byte.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

# Out of descriptors or memory: accepting again at once would spin; asyncio pauses too.
ACCEPT_PAUSE_S = 0.1
BACKLOG = 1024
_TRANSIENT = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED}
log = structlog.get_logger("protocol.listener")


class Listener:
    """Accepts connections and hands each bare socket to `serve` in a task of its own; `serve`
    owns the socket (closes it, or gives it to `open_accepted`)."""

    def __init__(self, serve: Callable[[socket.socket], Coroutine[Any, Any, None]]) -> None:
        self._serve = serve
        self._socks: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._serving: set[asyncio.Task[None]] = set()  # referenced, or the loop may drop them

    async def start(self, host: str, port: int) -> int:
        """Bind and listen on every address `host` names (all of them for "", as asyncio's
        servers do); return the first one's port."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                self._socks.append(_bound(family, kind, proto, address))
        except OSError:
            self.close()
            raise
        self._accepting = [
            asyncio.create_task(self._accept_forever(sock), name="accept") for sock in self._socks
        ]
        return int(self._socks[0].getsockname()[1])

    def close(self) -> None:
        """Stop accepting; connections already handed over are their handlers' to close."""
        for task in self._accepting:
            task.cancel()
        for sock in self._socks:
            sock.close()

    async def wait_closed(self) -> None:
        """Return once the accept loop has ended."""
        await asyncio.gather(*self._accepting, return_exceptions=True)

    async def _accept_forever(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno not in _TRANSIENT:
                    raise
                log.warning("listener.accept_failed", error=str(exc), pause_s=ACCEPT_PAUSE_S)
                await asyncio.sleep(ACCEPT_PAUSE_S)
                continue
            task = asyncio.create_task(self._serve(conn), name="connection")
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)


def _bound(family: int, kind: int, proto: int, address: tuple[Any, ...]) -> socket.socket:
    """A listening, non-blocking socket on `address` (IPv6 only for an IPv6 address)."""
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"cannot listen on {address[0]}:{address[1]}: {(exc.strerror or str(exc)).lower()}",
            ) from None
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def peer_address(sock: socket.socket) -> str:
    """The peer's IP address ("?" once it is gone)."""
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return "?"


async def open_accepted(
    sock: socket.socket,
    context: ssl.SSLContext | None,
    *,
    handshake_timeout_s: float,
    limit: int = 2**16,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams over an accepted socket, TLS (as the server) from its first byte unless
    `context` is None. OSError (an ssl.SSLError included) or TimeoutError if the handshake
    fails; the socket is closed then."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit)
    protocol = asyncio.StreamReaderProtocol(reader)
    try:
        async with asyncio.timeout(handshake_timeout_s):
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock, ssl=context)
    except BaseException:
        sock.close()
        raise
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
