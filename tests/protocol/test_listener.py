"""The listener begins TLS on the bare socket: a ClientHello that arrived first is not lost."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import uvloop

from protocol.listener import Listener, open_accepted
from protocol.tls import files_context
from tests.agent.certs import Certs, make_certs

TIMEOUT_S = 10.0
RUNNERS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


async def _readable(sock: socket.socket) -> None:
    """Return once bytes wait in the socket (left there: nothing reads them)."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(sock.fileno(), ready.set)
    try:
        await ready.wait()
    finally:
        loop.remove_reader(sock.fileno())


@contextlib.asynccontextmanager
async def _listening(
    serve: Callable[[socket.socket], Coroutine[Any, Any, None]],
) -> AsyncIterator[int]:
    """A listener on 127.0.0.1 serving each connection with `serve`: its port."""
    listener = Listener(serve)
    try:
        yield await listener.start("127.0.0.1", 0)
    finally:
        listener.close()
        await listener.wait_closed()


async def _echo(sock: socket.socket, context: ssl.SSLContext | None, size: int) -> None:
    """Send back the first `size` bytes (OSError, TimeoutError: the handshake failed)."""
    reader, writer = await open_accepted(sock, context, handshake_timeout_s=2)
    writer.write(await reader.readexactly(size))
    await writer.drain()
    writer.close()


async def _echo_once(
    certs: Certs, *, wait_for_hello: bool, client_tls: bool = True
) -> tuple[bytes, list[str]]:
    """A TLS listener whose handler may start only after the client's first bytes arrived;
    (what the client read back, the handler's failures)."""
    failures: list[str] = []

    async def serve(sock: socket.socket) -> None:
        if wait_for_hello:
            await _readable(sock)
        try:
            await _echo(sock, files_context(certs.center, server=True), 4)
        except (OSError, TimeoutError) as exc:
            failures.append(type(exc).__name__)

    async with _listening(serve) as port:
        context = files_context(certs.agent, server=False) if client_tls else None
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        writer.write(b"ping")
        try:
            echoed = await reader.read(4)
        except ConnectionError:
            echoed = b""
        writer.close()
        return echoed, failures


@pytest.mark.parametrize("loop_name", sorted(RUNNERS))
@pytest.mark.parametrize("wait_for_hello", [False, True])
def test_tls_handshake_completes_whenever_the_handler_starts(
    certs: Certs, loop_name: str, wait_for_hello: bool
) -> None:
    """On uvloop, a stream server read the ClientHello before its handler's start_tls and the
    handshake hung until the peer gave up; here it completes, however late the handler."""

    async def main() -> None:
        async with asyncio.timeout(TIMEOUT_S):
            echoed, failures = await _echo_once(certs, wait_for_hello=wait_for_hello)
        assert (echoed, failures) == (b"ping", [])

    RUNNERS[loop_name](main())


@pytest.mark.parametrize("loop_name", sorted(RUNNERS))
def test_a_plain_text_client_is_refused_by_the_handshake(certs: Certs, loop_name: str) -> None:
    async def main() -> None:
        async with asyncio.timeout(TIMEOUT_S):
            echoed, failures = await _echo_once(certs, wait_for_hello=False, client_tls=False)
        assert echoed == b""
        assert failures and failures[0] in {"SSLError", "TimeoutError", "ConnectionResetError"}

    RUNNERS[loop_name](main())


def test_plain_text_when_no_context() -> None:
    async def main() -> None:
        async with asyncio.timeout(TIMEOUT_S), _listening(lambda s: _echo(s, None, 2)) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hi")
            assert await reader.read(2) == b"hi"
            writer.close()

    asyncio.run(main())


def test_closed_listener_refuses_connections() -> None:
    async def main() -> None:
        async def serve(sock: socket.socket) -> None:
            sock.close()

        listener = Listener(serve)
        port = await listener.start("127.0.0.1", 0)
        listener.close()
        async with asyncio.timeout(TIMEOUT_S):
            await listener.wait_closed()
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", port)

    asyncio.run(main())
