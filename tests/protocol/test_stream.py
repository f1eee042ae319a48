"""The asyncio Connection and handshakes over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pytest

from protocol.codec import encode
from protocol.errors import AuthError, ConnectionClosed, ProtocolError
from protocol.framing import encode_frame
from protocol.messages import (
    Auth,
    Challenge,
    Error,
    Exec,
    Hello,
    Message,
    Ping,
    Pong,
    RunOutput,
    RunRef,
    RunSpec,
    Welcome,
)
from protocol.stream import (
    HANDSHAKE_MAX_FRAME_BYTES,
    Connection,
    accept_handshake,
    open_handshake,
)

SECRET = b"cluster-secret-for-tests-0001"
NEW_SECRET = b"rotated-secret-for-tests-0003"
OTHER = b"another-secret-for-tests-0002"
BOUND_S = 5.0
EXEC = Exec(
    epoch=1,
    ref=RunRef(runid="r-1", task_id=1, sched_us=1),
    spec=RunSpec(task_id=1, command="rm -rf /tmp/x"),
)


@dataclass
class Server:
    """A real server whose application records what each connection did."""

    port: int
    accepted: asyncio.Queue[Hello] = field(default_factory=asyncio.Queue)
    delivered: asyncio.Queue[tuple[str, Message]] = field(default_factory=asyncio.Queue)
    ended: asyncio.Queue[BaseException] = field(default_factory=asyncio.Queue)

    def delivered_now(self) -> list[tuple[str, Message]]:
        out = []
        while not self.delivered.empty():
            out.append(self.delivered.get_nowait())
        return out


async def _application(conn: Connection, server: Server, **handshake: Any) -> None:
    """What center and agent do: handshake, then deliver messages; refuse on protocol errors."""
    try:
        server.accepted.put_nowait(await accept_handshake(conn, **handshake))
        while True:
            message = await conn.recv()
            server.delivered.put_nowait((conn.peer_name, message))
            if isinstance(message, Ping):
                conn.send(Pong(sent_ms=message.sent_ms))
                await conn.drain()
    except ProtocolError as exc:
        server.ended.put_nowait(exc)
        await conn.refuse(exc)
    except ConnectionClosed as exc:
        server.ended.put_nowait(exc)


@asynccontextmanager
async def serve(
    secrets: tuple[bytes, ...] = (SECRET,),
    *,
    name: str = "center-a",
    expect_role: str = "agent",
    timeout_s: float = BOUND_S,
) -> AsyncIterator[Server]:
    handlers: set[asyncio.Task[Any]] = set()
    server: Server | None = None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        conn = Connection(reader, writer)
        try:
            assert server is not None
            await _application(
                conn,
                server,
                secrets=secrets,
                name=name,
                expect_role=expect_role,
                timeout_s=timeout_s,
            )
        finally:
            await conn.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    server = Server(port=listener.sockets[0].getsockname()[1])
    try:
        yield server
    finally:
        listener.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await listener.wait_closed()


@asynccontextmanager
async def dial(port: int) -> AsyncIterator[Connection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Connection(reader, writer)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def dial_authenticated(port: int, name: str = "agent-1") -> AsyncIterator[Connection]:
    async with dial(port) as conn:
        await open_handshake(conn, (SECRET,), role="agent", name=name)
        yield conn


async def _until_closed(conn: Connection) -> list[Message]:
    """Every message the peer sends before it closes the connection."""
    received = []
    with pytest.raises(ConnectionClosed):
        while True:
            received.append(await conn.recv())
    return received


def _calls(received: list[Message]) -> list[tuple[str, str | None]]:
    """Each message's call, and its code if it is an `error` frame (the text is for humans)."""
    return [(m.CALL, m.code if isinstance(m, Error) else None) for m in received]


def _write_raw(conn: Connection, data: bytes) -> None:
    conn._writer.write(data)


def _hello(role: str = "agent", name: str = "agent-x") -> Hello:
    return Hello(role=role, name=name, nonce=os.urandom(32))


@pytest.mark.parametrize(
    ("server_name", "client_role", "client_name", "server_secrets", "client_secrets"),
    [
        ("center-a", "agent", "agent-1", (SECRET,), (SECRET,)),
        ("agent-7", "center", "center-b", (SECRET,), (SECRET,)),
        ("center-a", "agent", "agent-1", (NEW_SECRET, SECRET), (SECRET,)),
        ("center-a", "agent", "agent-1", (SECRET,), (NEW_SECRET, SECRET)),
    ],
    ids=["agent dials center", "center dials agent", "server rotated", "client rotated"],
)
async def test_handshake_succeeds_and_names_both_peers(
    server_name: str,
    client_role: str,
    client_name: str,
    server_secrets: tuple[bytes, ...],
    client_secrets: tuple[bytes, ...],
) -> None:
    """Both sides authenticate, learn each other's name, and then exchange messages."""
    async with (
        asyncio.timeout(BOUND_S),
        serve(server_secrets, name=server_name, expect_role=client_role) as server,
        dial(server.port) as conn,
    ):
        welcome = await open_handshake(conn, client_secrets, role=client_role, name=client_name)
        assert welcome.name == conn.peer_name == server_name
        hello = await server.accepted.get()
        assert (hello.role, hello.name) == (client_role, client_name)
        conn.send(Ping(epoch=1, sent_ms=42))
        await conn.drain()
        assert await conn.recv() == Pong(sent_ms=42)
        assert await server.delivered.get() == (client_name, Ping(epoch=1, sent_ms=42))


@pytest.mark.parametrize("reaction", ["refuse", "hang up"])
@pytest.mark.parametrize(
    ("server_secrets", "client_secrets"),
    [((OTHER,), (SECRET,)), ((SECRET,), (OTHER,))],
    ids=["server has the wrong secret", "client has the wrong secret"],
)
async def test_wrong_secret_is_auth_error_on_both_ends(
    server_secrets: tuple[bytes, ...], client_secrets: tuple[bytes, ...], reaction: str
) -> None:
    """Without a shared secret both ends raise AuthError and the server delivers nothing."""
    async with asyncio.timeout(BOUND_S), serve(server_secrets) as server:
        async with dial(server.port) as conn:
            with pytest.raises(AuthError, match="does not know the cluster secret") as info:
                await open_handshake(conn, client_secrets, role="agent", name="agent-1")
            if reaction == "refuse":
                await conn.refuse(info.value)
        assert isinstance(await server.ended.get(), AuthError)
        assert server.accepted.empty()
        assert server.delivered_now() == []


async def test_bogus_proof_with_pipelined_exec_delivers_nothing() -> None:
    """A client that fakes its proof and pipelines an exec behind it gets refused, exec unread."""
    async with asyncio.timeout(BOUND_S), serve() as server, dial(server.port) as conn:
        conn.send(_hello())
        assert isinstance(await conn.recv(), Challenge)
        conn.send_many([Auth(proof=b"\x00" * 32), EXEC])
        assert _calls(await _until_closed(conn)) == [("error", "auth")]
        assert server.delivered_now() == []


@pytest.mark.parametrize(
    "first_frames",
    [
        [EXEC],
        [_hello(), EXEC],
        [_hello(role="center"), EXEC],
        [Hello(role="agent", name="agent-x", nonce=b"short"), EXEC],
        [Welcome(name="i-am-the-server"), EXEC],
    ],
    ids=["exec first", "exec instead of auth", "wrong role", "short nonce", "welcome first"],
)
async def test_exec_before_authentication_is_refused(first_frames: list[Message]) -> None:
    """Anything but a proper hello and proof means AuthError, an `auth` error frame, a close."""
    async with asyncio.timeout(BOUND_S), serve() as server, dial(server.port) as conn:
        conn.send_many(first_frames)
        received = _calls(await _until_closed(conn))
        assert received in ([("error", "auth")], [("challenge", None), ("error", "auth")])
        assert isinstance(await server.ended.get(), AuthError)
        assert server.accepted.empty()
        assert server.delivered_now() == []


def _frame_of(value: Any) -> bytes:
    return encode_frame(msgpack.packb(value, use_bin_type=True))


BAD_INPUT = [
    # (id, after the handshake?, bytes, error code answered)
    ("HTTP before hello", False, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "frame"),
    ("TLS hello to a plain port", False, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "frame"),
    (
        "frame above the handshake limit",
        False,
        b"$%d\r\n" % (HANDSHAKE_MAX_FRAME_BYTES + 1),
        "frame_too_large",
    ),
    ("garbage after auth", True, b"\x00\x01 garbage", "frame"),
    ("bad length after auth", True, b"$12x\r\n", "frame"),
    ("frame above 1 MiB after auth", True, b"$1048577\r\n", "frame_too_large"),
    ("bad msgpack after auth", True, encode_frame(b"\xc1"), "payload"),
    ("not an envelope", True, _frame_of([1, 2, 3]), "payload"),
    ("unknown call", True, _frame_of({"call": "shell", "params": {}}), "unknown_call"),
    (
        "bad params",
        True,
        _frame_of({"call": "ping", "params": {"epoch": "1", "sent_ms": 1}}),
        "bad_params",
    ),
]


@pytest.mark.parametrize(
    ("after_auth", "data", "code"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
async def test_bad_input_closes_only_that_connection(
    after_auth: bool, data: bytes, code: str
) -> None:
    """Bad bytes get an `error` frame with the right code and a close; other clients carry on."""
    async with (
        asyncio.timeout(BOUND_S),
        serve() as server,
        dial_authenticated(server.port, "good-agent") as good,
    ):
        async with dial(server.port) as bad:
            if after_auth:
                await open_handshake(bad, (SECRET,), role="agent", name="bad-agent")
            _write_raw(bad, data)
            assert _calls(await _until_closed(bad)) == [("error", code)]
        ended = await server.ended.get()
        assert isinstance(ended, ProtocolError)
        assert ended.code == code
        good.send(Ping(epoch=1, sent_ms=7))
        await good.drain()
        assert await good.recv() == Pong(sent_ms=7)
        assert server.delivered_now() == [("good-agent", Ping(epoch=1, sent_ms=7))]


@pytest.mark.parametrize(
    "sent", [b"", b"$40\r\n", encode(_hello())[:10]], ids=["nothing", "a header", "half a hello"]
)
async def test_silent_client_is_dropped_after_the_handshake_timeout(sent: bytes) -> None:
    """A client that never completes its hello gets AuthError and is closed after timeout_s."""
    async with asyncio.timeout(BOUND_S), serve(timeout_s=0.2) as server, dial(server.port) as conn:
        _write_raw(conn, sent)
        assert _calls(await _until_closed(conn)) == [("error", "auth")]
        ended = await server.ended.get()
        assert isinstance(ended, AuthError)
        assert "within 0.2 s" in str(ended)


async def test_client_hanging_up_mid_handshake_is_auth_error() -> None:
    """A client that closes after its hello makes the server's handshake fail with AuthError."""
    async with asyncio.timeout(BOUND_S), serve() as server:
        async with dial(server.port) as conn:
            conn.send(_hello())
            assert isinstance(await conn.recv(), Challenge)
        ended = await server.ended.get()
        assert isinstance(ended, AuthError)
        assert "closed the connection during the handshake" in str(ended)


async def test_server_hanging_up_mid_handshake_is_auth_error() -> None:
    """A server that accepts and closes at once makes the client's handshake fail with AuthError."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        await writer.wait_closed()

    listener = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        async with asyncio.timeout(BOUND_S), dial(listener.sockets[0].getsockname()[1]) as conn:
            with pytest.raises(AuthError, match="closed the connection during the handshake"):
                await open_handshake(conn, (SECRET,), role="agent", name="agent-1")
    finally:
        listener.close()
        await listener.wait_closed()


async def test_silent_server_is_auth_error_for_the_client() -> None:
    """A server that never answers the hello makes the client give up after its timeout_s."""
    release = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()
        await writer.wait_closed()

    listener = await asyncio.start_server(mute, "127.0.0.1", 0)
    try:
        async with asyncio.timeout(BOUND_S), dial(listener.sockets[0].getsockname()[1]) as conn:
            with pytest.raises(AuthError, match=r"within 0\.2 s"):
                await open_handshake(conn, (SECRET,), role="agent", name="a", timeout_s=0.2)
    finally:
        release.set()
        listener.close()
        await listener.wait_closed()


async def test_big_hello_is_refused_but_big_messages_pass_after_auth() -> None:
    """Before auth frames are capped at HANDSHAKE_MAX_FRAME_BYTES; after it the full limit holds."""
    big = b"x" * (HANDSHAKE_MAX_FRAME_BYTES * 4)
    async with asyncio.timeout(BOUND_S), serve() as server:
        async with dial(server.port) as conn:
            conn.send(Hello(role="agent", name="x", nonce=os.urandom(32), version="v" * 20000))
            assert _calls(await _until_closed(conn)) == [("error", "frame_too_large")]
        await server.ended.get()
        async with dial_authenticated(server.port) as conn:
            conn.send(RunOutput(runid="r-1", offset=0, data=big))
            await conn.drain()
            expected = ("agent-1", RunOutput(runid="r-1", offset=0, data=big))
            assert await server.delivered.get() == expected


async def test_batched_frames_arrive_in_order() -> None:
    """Messages sent with send_many in one write are delivered one by one, in order."""
    pings = [Ping(epoch=1, sent_ms=i) for i in range(200)]
    async with asyncio.timeout(BOUND_S), serve() as server, dial_authenticated(server.port) as conn:
        conn.send_many(pings)
        await conn.drain()
        assert [await conn.recv() for _ in pings] == [Pong(sent_ms=i) for i in range(200)]
        assert [m for _, m in server.delivered_now()] == pings


async def test_server_error_frame_reaches_a_client_mid_handshake() -> None:
    """An `error` frame in place of a challenge becomes a client AuthError quoting the server."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer)
        await conn.recv()
        await conn.refuse(AuthError("agents from this network are not allowed"))

    listener = await asyncio.start_server(refuse, "127.0.0.1", 0)
    try:
        async with asyncio.timeout(BOUND_S), dial(listener.sockets[0].getsockname()[1]) as conn:
            with pytest.raises(AuthError, match="error auth: agents from this network"):
                await open_handshake(conn, (SECRET,), role="agent", name="agent-1")
    finally:
        listener.close()
        await listener.wait_closed()


async def test_close_drops_a_peer_that_never_reads() -> None:
    """close() gives a peer that never reads CLOSE_TIMEOUT_S, then aborts and frees the buffer."""
    accepted: asyncio.Queue[Connection] = asyncio.Queue()

    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.put_nowait(Connection(reader, writer))

    listener = await asyncio.start_server(keep, "127.0.0.1", 0)
    try:
        async with asyncio.timeout(BOUND_S), dial(listener.sockets[0].getsockname()[1]):
            server_side = await accepted.get()
            # More than loopback socket buffers hold, so some stays queued in the transport.
            server_side._writer.write(b"x" * (64 << 20))
            assert server_side._writer.transport.get_write_buffer_size() > 0
            await server_side.close()
            assert server_side._writer.transport.get_write_buffer_size() == 0
            await server_side._writer.wait_closed()
            await server_side.close()  # closing twice is harmless, not a stray CancelledError
    finally:
        listener.close()
        await listener.wait_closed()
