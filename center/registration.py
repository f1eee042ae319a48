"""The registration port (9502): agents announce themselves; unknown ones become pending."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from sqlalchemy.exc import DBAPIError

from center.errors import AgentKeyMismatch
from center.limits import Buckets
from protocol.clock import now_us
from protocol.errors import AuthError, ConnectionClosed, ProtocolError
from protocol.listener import Listener, open_accepted, peer_address
from protocol.messages import Register, Registered
from protocol.settings import is_wildcard
from protocol.stream import Connection, accept_handshake
from protocol.tls import LinkTls
from protocol.vocabulary import CertRole

log = structlog.get_logger("center.registration")

# (register message, address to dial) -> the answer (agent id, status, its certificate)
RegisterFn = Callable[[Register, str], Awaitable[Registered]]
EXCHANGE_TIMEOUT_S = 10.0
LIMIT_LOG_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class Guard:
    """The port's limits, and whom to tell when a peer is refused or a limit is hit."""

    max_connections: int
    per_address_per_minute: float
    refused: Callable[[str, str], None]  # (peer address, reason): a failed handshake
    tls_refused: Callable[[str, str, str], None]  # (peer address, kind, reason)
    limited: Callable[[str, str], None]  # (limit name, peer address)


class RegistrationServer:
    """Accepts `register` calls; every center serves them, leader or not."""

    def __init__(
        self,
        secrets: tuple[bytes, ...],
        name: str,
        register: RegisterFn,
        max_frame_bytes: int,
        *,
        guard: Guard,
        tls: LinkTls,
    ) -> None:
        self._tls = tls
        self._secrets = secrets
        self._name = name
        self._register = register
        self._max_frame_bytes = max_frame_bytes
        self._guard = guard
        self._buckets = Buckets(per_minute=guard.per_address_per_minute)
        self._logged: dict[tuple[str, str], float] = {}
        self._listener = Listener(self._handle)
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = False  # set at close: cancelled connections end quietly

    async def start(self, host: str, port: int) -> int:
        # TLS is started per connection (not by the listener): a failed TLS handshake is then
        # ours to log and count, and each connection gets the context current at its start.
        bound = await self._listener.start(host, port)
        log.info("center.registration_listening", host=host, port=bound)
        return bound

    async def close(self) -> None:
        self._closing = True
        self._listener.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._listener.wait_closed()

    def _over_limit(self, peer_ip: str) -> str:
        """The limit this new connection would break ("" when none)."""
        if len(self._handlers) >= self._guard.max_connections:
            return "connections"
        if not self._buckets.allow(peer_ip, time.monotonic()):
            return "registrations_per_address"
        return ""

    def _hit(self, limit: str, peer_ip: str) -> None:
        self._guard.limited(limit, peer_ip)
        now = time.monotonic()
        if now - self._logged.get((limit, peer_ip), -LIMIT_LOG_EVERY_S) >= LIMIT_LOG_EVERY_S:
            self._logged[(limit, peer_ip)] = now  # one line per address per minute, not a flood
            log.warning(
                "center.limit_hit",
                limit=limit,
                peer=peer_ip,
                max_connections=self._guard.max_connections,
                per_address_per_minute=self._guard.per_address_per_minute,
            )

    async def _handle(self, sock: socket.socket) -> None:
        try:
            await self._serve(sock)
        except asyncio.CancelledError:
            # close() cancels connections; asyncio's stream callback would then print the
            # cancellation as a traceback (no JSON line). It ends here, as a normal close.
            if not self._closing:
                raise

    async def _serve(self, sock: socket.socket) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer_ip = peer_address(sock)
        limit = self._over_limit(peer_ip)
        if limit:
            self._hit(limit, peer_ip)
            sock.close()
            return
        self._handlers.add(task)
        streams = await self._start_tls(sock, peer_ip)
        if streams is None:
            self._handlers.discard(task)
            return
        reader, writer = streams
        conn = Connection(reader, writer, max_frame_bytes=self._max_frame_bytes)
        try:
            async with asyncio.timeout(EXCHANGE_TIMEOUT_S):
                await self._exchange(conn)
        except ProtocolError as exc:
            log.warning("center.registration_refused", peer=conn.peer, reason=str(exc))
            if isinstance(exc, AuthError):
                self._guard.refused(peer_ip, str(exc))
            await conn.refuse(exc)
        except (ConnectionClosed, TimeoutError, OSError) as exc:
            log.info(
                "center.registration_dropped", peer=conn.peer, reason=str(exc) or type(exc).__name__
            )
        except DBAPIError as exc:  # the store is down: the agent registers again shortly
            log.warning(
                "center.registration_failed", peer=conn.peer, reason=str(exc).splitlines()[0][:300]
            )
        finally:
            await conn.close()
            self._handlers.discard(task)

    async def _start_tls(
        self, sock: socket.socket, peer_ip: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """TLS first (unless plain text was asked for): the streams once it is up; else None,
        and the peer (a plain-text client, a certificate of another CA, expired) is logged,
        counted, dropped."""
        context = self._tls.server_context()
        try:
            return await open_accepted(sock, context, handshake_timeout_s=EXCHANGE_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            reason = str(exc) or "no TLS handshake in time"
            log.warning("center.tls_refused", peer=peer_ip, reason=reason)
            self._guard.tls_refused(peer_ip, "handshake", reason)
            return None

    async def _exchange(self, conn: Connection) -> None:
        await accept_handshake(
            conn, self._secrets, name=self._name, expect_role="agent", binding=self._tls.binding
        )
        message = await conn.recv()
        if not isinstance(message, Register):
            raise ProtocolError(f"expected register, got {type(message).__name__}")
        self._check_certificate(conn, message)
        peer_ip = _address(conn)
        host = message.host if message.host and not is_wildcard(message.host) else peer_ip
        started = time.monotonic()
        try:
            reply = await self._register(message, host)
        except AgentKeyMismatch as exc:  # another host, holding the secret, took this name
            raise AuthError(str(exc)) from exc
        log.info(
            "agent.registered",
            aid=reply.agent_id,
            name=message.name,
            address=f"{host}:{message.port}",
            status=reply.status,
            store_ms=round((time.monotonic() - started) * 1000, 1),
        )
        conn.send(reply)
        with contextlib.suppress(ConnectionClosed):
            await conn.drain()

    def _check_certificate(self, conn: Connection, message: Register) -> None:
        """An agent that shows a certificate must show its own: an agent's, in its name, not
        revoked. One without (enrolling, or an operator's PKI) is left to the handshake."""
        der = conn.peer_cert_der
        if der is None:
            return
        problem = self._tls.peer_problem(der, CertRole.AGENT, message.name, now_us())
        if problem:
            self._guard.tls_refused(_address(conn), "certificate", problem)
            raise AuthError(f"agent {message.name[:64]!r}: {problem}")


def _address(conn: Connection) -> str:
    """The peer's address without its port (IPv6 without brackets)."""
    return conn.peer.rsplit(":", 1)[0].strip("[]")
