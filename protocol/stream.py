"""The asyncio shell around the sans-IO codec: one authenticated message connection."""

from __future__ import annotations

import asyncio
import os
from collections import deque

from protocol import auth, certs
from protocol.codec import MessageDecoder, encode, encode_many
from protocol.errors import AuthError, ConnectionClosed, ProtocolError
from protocol.framing import MAX_FRAME_BYTES
from protocol.messages import Auth, Challenge, Error, Hello, Message, Welcome

READ_BYTES = 256 * 1024
HANDSHAKE_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 1.0
# Until a client has proved itself it gets a small frame budget: a hello is well under 1 KiB, and
# a stranger must not make a server buffer a full frame limit per open connection.
HANDSHAKE_MAX_FRAME_BYTES = 16 * 1024


class Connection:
    """Reads validated messages and writes batches of frames over one stream."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = MessageDecoder(max_frame_bytes)
        self._inbox: deque[Message] = deque()
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.peer_name = ""
        self.session_nonce = b""  # the client's hello nonce: fresh for every connection

    @property
    def peer_cert_der(self) -> bytes | None:
        """The peer's TLS certificate (DER), checked or not; None on a plain-text stream."""
        ssl_object = self._writer.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        der = ssl_object.getpeercert(binary_form=True)
        return bytes(der) if der else None

    async def recv(self) -> Message:
        """The next message; raises ConnectionClosed at EOF, ProtocolError on bad input."""
        while not self._inbox:
            try:
                data = await self._reader.read(READ_BYTES)
            except OSError as exc:
                # Not just ConnectionError: a kernel ETIMEDOUT arrives as TimeoutError, which
                # callers would take for their own asyncio.timeout expiring.
                raise ConnectionClosed(self.peer) from exc
            if not data:
                raise ConnectionClosed(self.peer)
            self._inbox.extend(self._decoder.feed(data))
        return self._inbox.popleft()

    def send(self, message: Message) -> None:
        """Queue one frame on the transport (no await: callers batch, then drain)."""
        self._writer.write(encode(message))

    def send_bytes(self, frames: bytes) -> None:
        """Queue frames encoded beforehand (a burst encoded while there was time)."""
        if frames:
            self._writer.write(frames)

    def send_many(self, messages: list[Message]) -> None:
        if messages:
            self._writer.write(encode_many(messages))

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except OSError as exc:
            raise ConnectionClosed(self.peer) from exc

    @property
    def closing(self) -> bool:
        return self._writer.is_closing()

    async def refuse(self, exc: ProtocolError) -> None:
        """Answer a protocol error with an `error` frame where the socket allows, then close."""
        try:
            self.send(Error(code=exc.code, message=str(exc)[:500]))
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.drain()
        except (ConnectionClosed, TimeoutError, RuntimeError):
            pass
        await self.close()

    async def close(self) -> None:
        """Close, flushing what is queued for at most a second, then drop the connection hard."""
        self._writer.close()
        # Wait through a task: timing out a direct `await wait_closed()` cancels the stream's
        # own close future, and every later wait_closed() (a second close()) then raises
        # CancelledError into a task that nobody cancelled.
        waiter = asyncio.ensure_future(self._writer.wait_closed())
        waiter.add_done_callback(_ignore_outcome)
        done, _ = await asyncio.wait({waiter}, timeout=CLOSE_TIMEOUT_S)
        if not done:
            # A graceful close waits until the peer has read everything queued; a peer that
            # never reads would hold the socket and its buffer forever.
            self._writer.transport.abort()
            await asyncio.wait({waiter}, timeout=CLOSE_TIMEOUT_S)


def _ignore_outcome(task: asyncio.Future[None]) -> None:
    """A reset while closing is no news: retrieve it so asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()


async def accept_handshake(
    conn: Connection,
    secrets: tuple[bytes, ...],
    *,
    name: str,
    expect_role: str,
    binding: bytes = b"",
    timeout_s: float = HANDSHAKE_TIMEOUT_S,
) -> Hello:
    """Server side: prove ourselves, check the client; return the client's hello. Under TLS,
    `binding` is `certs.channel_binding` of our own certificate.

    Raises AuthError for a failed handshake (including a peer that hangs up or stays silent),
    and any other ProtocolError for bytes that are not the protocol at all.
    """
    limit = conn._decoder.max_frame_bytes
    conn._decoder.max_frame_bytes = min(limit, HANDSHAKE_MAX_FRAME_BYTES)
    try:
        async with asyncio.timeout(timeout_s):
            hello = await _accept_steps(conn, secrets, name, expect_role, binding)
    except TimeoutError:
        raise AuthError(f"handshake not completed within {timeout_s:g} s") from None
    except ConnectionClosed as exc:
        raise AuthError(f"{conn.peer} closed the connection during the handshake") from exc
    conn._decoder.max_frame_bytes = limit
    conn.peer_name = hello.name
    conn.session_nonce = hello.nonce
    return hello


async def _accept_steps(
    conn: Connection, secrets: tuple[bytes, ...], name: str, expect_role: str, binding: bytes
) -> Hello:
    hello = await conn.recv()
    if not isinstance(hello, Hello):
        raise AuthError(f"expected hello from a {expect_role}, got {_describe(hello)}")
    if hello.role != expect_role:
        raise AuthError(f"expected hello from a {expect_role}, got one from {hello.role[:64]!r}")
    if not auth.nonce_ok(hello.nonce):
        raise AuthError("hello nonce must be 32 bytes")
    server_nonce = os.urandom(auth.NONCE_BYTES)
    proofs = auth.server_proofs(secrets, hello.nonce, server_nonce, binding)
    conn.send(Challenge(nonce=server_nonce, proofs=proofs))
    await conn.drain()
    answer = await conn.recv()
    if not isinstance(answer, Auth):
        raise AuthError(f"expected auth, got {_describe(answer)}")
    if not auth.check_client(secrets, answer.proof, hello.nonce, server_nonce, binding):
        raise AuthError(f"{hello.role} {hello.name[:64]!r} failed authentication")
    conn.send(Welcome(name=name))
    await conn.drain()
    return hello


async def open_handshake(
    conn: Connection,
    secrets: tuple[bytes, ...],
    *,
    role: str,
    name: str,
    version: str = "",
    timeout_s: float = HANDSHAKE_TIMEOUT_S,
) -> Welcome:
    """Client side: check the server's proof before proving ourselves (under TLS, bound to the
    certificate the server showed us).

    Raises AuthError for a failed handshake (including a server that hangs up or stays silent).
    """
    try:
        async with asyncio.timeout(timeout_s):
            welcome = await _open_steps(conn, secrets, role=role, name=name, version=version)
    except TimeoutError:
        raise AuthError(f"handshake not completed within {timeout_s:g} s") from None
    except ConnectionClosed as exc:
        raise AuthError(f"{conn.peer} closed the connection during the handshake") from exc
    conn.peer_name = welcome.name
    return welcome


async def _open_steps(
    conn: Connection, secrets: tuple[bytes, ...], *, role: str, name: str, version: str
) -> Welcome:
    nonce = os.urandom(auth.NONCE_BYTES)
    conn.session_nonce = nonce
    cert = conn.peer_cert_der
    binding = certs.channel_binding(cert) if cert else b""
    conn.send(Hello(role=role, name=name, nonce=nonce, version=version))
    await conn.drain()
    challenge = await conn.recv()
    if not isinstance(challenge, Challenge):
        raise AuthError(f"expected challenge, got {_describe(challenge)}")
    if not auth.nonce_ok(challenge.nonce):
        raise AuthError("challenge nonce must be 32 bytes")
    secret = auth.match_server(secrets, challenge.proofs, nonce, challenge.nonce, binding)
    if secret is None:
        raise AuthError(f"server at {conn.peer} does not know the cluster secret")
    conn.send(Auth(proof=auth.client_proof(secret, nonce, challenge.nonce, binding)))
    await conn.drain()
    welcome = await conn.recv()
    if not isinstance(welcome, Welcome):
        raise AuthError(f"server at {conn.peer} refused our proof: {_describe(welcome)}")
    return welcome


def _describe(message: Message) -> str:
    """A message for a log line; an `error` frame's own words are the useful part."""
    if isinstance(message, Error):
        return f"error {message.code[:64]}: {message.message[:200]}"
    return message.CALL
