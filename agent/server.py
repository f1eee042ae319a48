"""The agent's listener: authenticate each center connection, then hand its messages on."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

import structlog

from agent.config import AgentConfig
from agent.enrolment import AgentTls
from agent.metrics import AgentMetrics
from agent.outbox import Event
from protocol.errors import ConnectionClosed, FrameTooLarge, ProtocolError, TlsNotReady, TlsRefused
from protocol.listener import Listener, open_accepted
from protocol.messages import Message
from protocol.stream import HANDSHAKE_TIMEOUT_S, Connection, accept_handshake

# Above this many bytes waiting in a connection's send buffer, live output is dropped
# (the default of agent_live_output_backlog_bytes).
LIVE_OUTPUT_BACKLOG_BYTES = 1 << 20
CLOSE_TIMEOUT_S = 2.0
# A center's ping waits behind the frames it sent before (a burst sent ahead can take seconds
# to read), and the center closes a link it has not heard from for center_offline_after_s (2 s
# by default). So while we read a burst (this many frames read since we last sent), a pong at
# least this often; a few frames a second in quiet times never call for one.
ALIVE_EVERY_S = 0.25
ALIVE_AFTER_FRAMES = 64
log = structlog.get_logger("agent.server")


class Session:
    """One authenticated center connection, with the epoch its peer claims.

    While a resend from the outbox is in progress (`hold`), fresh events are held back and
    sent after it (`release`), so the peer sees events in seq order and none twice.
    """

    def __init__(self, conn: Connection, writer: asyncio.StreamWriter, order: int) -> None:
        self.conn = conn
        self._writer = writer
        self.order = order
        self.epoch = -1
        self.sent_seq = 0
        self._holds = 0
        self._held: list[Event] = []
        self.ping_ms = 0  # the newest ping read here: an unasked pong echoes it
        self._sent_mono = time.monotonic()
        self._unanswered = 0  # frames read since we last sent

    def hold(self) -> None:
        """Hold fresh events back while a resend is in progress."""
        self._holds += 1

    def release(self) -> None:
        """End a hold: send what was held, in seq order, without duplicates."""
        self._holds -= 1
        if not self._holds:
            by_seq = {e.seq: e for e in self._held}
            self._held = []
            self.deliver([by_seq[seq] for seq in sorted(by_seq)])

    def deliver(self, events: Sequence[Event]) -> None:
        """Send events (seq order) not sent on this connection yet, or hold them."""
        if self._holds:
            self._held.extend(events)
            return
        fresh = [e for e in events if e.seq > self.sent_seq]
        if fresh:
            self.send(list(fresh))
            self.sent_seq = fresh[-1].seq

    @property
    def backlog_bytes(self) -> int:
        """Bytes queued on the socket and not yet taken by the peer."""
        return self._writer.transport.get_write_buffer_size()

    def send(self, messages: list[Message]) -> None:
        """Queue frames (no await); a closing connection drops them (the outbox keeps events)."""
        if messages and not self.conn.closing:
            self.conn.send_many(messages)
            self._sent_mono, self._unanswered = time.monotonic(), 0

    def unanswered(self, now_mono: float) -> bool:
        """Count a frame read that called for no reply; True if a sign of life is due: we are
        reading a burst and the peer has heard nothing from us for ALIVE_EVERY_S. Not while a
        resend is held: a center takes a pong to mean that every event resent came before it."""
        self._unanswered += 1
        return (
            self._unanswered >= ALIVE_AFTER_FRAMES
            and now_mono - self._sent_mono >= ALIVE_EVERY_S
            and not self._holds
        )


class Handler(Protocol):
    """What the server needs from the agent's message handling."""

    def welcome(self, session: Session) -> AsyncIterator[list[Message]]:
        """Batches to send right after the handshake (state, then unacked events)."""

    def handle(self, session: Session, message: Message) -> list[Message]:
        """React to one message; return the replies. Raise ProtocolError to drop the peer."""

    def sign_of_life(self, session: Session) -> list[Message]:
        """An unasked pong, sent while the peer's frames keep us reading."""


class Sessions:
    """The open center connections and which of them is the leader.

    `on_new_leader` is called when the leader changes to an already open connection (a higher
    epoch, or the previous leader going away), so it can be sent the events it missed.
    """

    def __init__(self) -> None:
        self._open: dict[int, Session] = {}
        self._order = itertools.count(1)
        self._heard_mono = time.monotonic()  # the last frame from an authenticated center
        self.on_new_leader: Callable[[Session], None] = lambda session: None

    def __len__(self) -> int:
        return len(self._open)

    def heard(self) -> None:
        self._heard_mono = time.monotonic()

    def silent_s(self) -> float:
        """Seconds since any center was last heard (while one is connected, about 0)."""
        return time.monotonic() - self._heard_mono

    def add(self, conn: Connection, writer: asyncio.StreamWriter) -> Session:
        """Register a freshly authenticated connection."""
        session = Session(conn, writer, next(self._order))
        self._open[session.order] = session
        return session

    def remove(self, session: Session) -> None:
        """Forget a connection that ended; another open one may become leader."""
        was_leader = self.leader() is session
        self._open.pop(session.order, None)
        successor = self.leader()
        if was_leader and successor is not None:
            self.on_new_leader(successor)

    def all(self) -> list[Session]:
        """Every open connection."""
        return list(self._open.values())

    def leader(self) -> Session | None:
        """The most recent open connection among those whose peer sent the highest epoch."""
        if not self._open:
            return None
        return max(self._open.values(), key=lambda s: (s.epoch, s.order))

    def publish(self, events: Sequence[Event]) -> None:
        """Send freshly committed events (in seq order) to the leader, if one is connected."""
        leader = self.leader()
        if leader is not None:
            leader.deliver(events)

    def note_epoch(self, session: Session, epoch: int) -> None:
        """Record the epoch a peer sent (the highest it has sent counts)."""
        if epoch <= session.epoch:
            return
        was_leader = self.leader() is session
        session.epoch = epoch
        if not was_leader and self.leader() is session:
            self.on_new_leader(session)


class AgentServer:
    """Listens for centers; each connection is authenticated, then served until it ends.

    A connection beyond `agent_max_connections` is closed at once; with TLS on, a peer must
    then complete mutual TLS (a certificate from the cluster CA); then comes the secret handshake.
    A connection that fails any of these or breaks the protocol is answered with an `error` frame
    where possible and closed, with one log line; nothing else on the agent is affected.
    Of the open connections, the leader is the most recent one whose peer sent the highest epoch:
    live events go to it.
    """

    def __init__(
        self,
        config: AgentConfig,
        sessions: Sessions,
        handler: Handler,
        *,
        tls: AgentTls | None = None,
        metrics: AgentMetrics | None = None,
        on_uncertified: Callable[[], None] = lambda: None,
    ) -> None:
        self._on_uncertified = on_uncertified  # a center dialled before we had a certificate
        self._config = config
        self._sessions = sessions
        self._handler = handler
        self._tls = tls
        self._metrics = metrics or AgentMetrics()
        self._listener = Listener(self._on_connect)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False  # set at shutdown: cancelled connections end quietly

    @property
    def open_connections(self) -> int:
        """Connections being served, authenticated or not."""
        return len(self._tasks)

    async def start(self) -> int:
        """Bind the listener; return the bound port."""
        host, port = self._config.agent_listen
        return await self._listener.start(host, port)

    def close_listener(self) -> None:
        """Stop accepting connections."""
        self._listener.close()

    async def close_connections(self) -> None:
        """Close every connection (authenticated or not) and wait for their tasks to end."""
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()  # each task closes its own connection on the way out
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
        await self._listener.wait_closed()

    async def _on_connect(self, sock: socket.socket) -> None:
        """One connection's whole life: limit, TLS, handshake, then messages until it ends."""
        limit = self._config.agent_max_connections
        if len(self._tasks) >= limit:
            self._metrics.limit_hit(
                "connections", max=limit, peer=_peer(sock), action="closed before the handshake"
            )
            sock.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            streams = await self._start_tls(sock)
            if streams is None:
                return
            reader, writer = streams
            conn = Connection(reader, writer, max_frame_bytes=self._config.agent_max_frame_bytes)
            try:
                if await self._handshake(conn):
                    await self._serve(conn, writer)
            finally:
                await conn.close()
        except asyncio.CancelledError:
            # The shutdown cancels connections. asyncio's stream callback then calls
            # task.exception() on the cancelled task, which raises and prints a traceback
            # that is no JSON line: the cancellation ends here instead, as a normal close.
            if not self._closing:
                raise
        finally:
            self._tasks.discard(task)

    async def _start_tls(
        self, sock: socket.socket
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Mutual TLS unless plain text was asked for: the streams once the peer showed a
        center's certificate from the cluster's CAs; else None after one log line and a count,
        the connection dropped (a plain-text client, another CA, an agent's certificate, no
        certificate of ours yet)."""
        tls, peer = self._tls, _peer(sock)
        try:
            context = tls.link.server_context() if tls is not None else None
        except TlsNotReady as exc:
            log.info("agent.tls_not_ready", peer=peer, reason=str(exc))
            self._on_uncertified()
            sock.close()
            return None
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await open_accepted(
                sock, context, handshake_timeout_s=HANDSHAKE_TIMEOUT_S
            )
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            if tls is not None and context is not None and (problem := tls.center_problem(der)):
                raise TlsRefused(problem)
        except (OSError, TimeoutError, TlsRefused) as exc:  # SSLError: an OSError
            reason = str(exc) or f"no TLS handshake within {HANDSHAKE_TIMEOUT_S:g} s"
            log.warning("agent.tls_refused", peer=peer, reason=reason)
            self._metrics.tls_refused.inc()
            if writer is not None:
                writer.transport.abort()
            return None
        return reader, writer

    async def _handshake(self, conn: Connection) -> bool:
        """True if the peer is a center holding the secret; else refuse it and log once."""
        config = self._config
        binding = self._tls.link.binding if self._tls else b""
        try:
            await accept_handshake(
                conn, config.secret, name=config.agent_name, expect_role="center", binding=binding
            )
        except ProtocolError as exc:
            log.warning("agent.handshake_refused", peer=conn.peer, reason=str(exc))
            self._note_frame_limit(exc)
            await conn.refuse(exc)
            return False
        except ConnectionClosed:
            log.warning("agent.handshake_refused", peer=conn.peer, reason="closed by the peer")
            return False
        return True

    async def _serve(self, conn: Connection, writer: asyncio.StreamWriter) -> None:
        """Welcome an authenticated center, then handle its messages until it goes."""
        session = self._sessions.add(conn, writer)
        log.info("agent.center_connected", peer=conn.peer, center=conn.peer_name)
        try:
            session.hold()
            try:
                async for batch in self._handler.welcome(session):
                    session.send(batch)
                    await conn.drain()
            finally:
                session.release()
            while True:
                message = await conn.recv()
                self._sessions.heard()
                replies = self._handler.handle(session, message)
                if replies:
                    session.send(replies)
                elif session.unanswered(time.monotonic()):
                    session.send(self._handler.sign_of_life(session))
                # drain() only suspends when the peer reads slower than we write: the frames of
                # one read are handled without yielding, so their writes commit in one batch.
                await conn.drain()
        except ProtocolError as exc:
            log.warning(
                "agent.protocol_error",
                peer=conn.peer,
                center=conn.peer_name,
                code=exc.code,
                reason=str(exc),
            )
            self._note_frame_limit(exc)
            await conn.refuse(exc)
        except ConnectionClosed:
            log.info("agent.center_disconnected", peer=conn.peer, center=conn.peer_name)
        except Exception:  # a bug in a handler must cost this connection only
            log.exception("agent.handler_failed", peer=conn.peer, center=conn.peer_name)
        finally:
            self._sessions.remove(session)

    def _note_frame_limit(self, exc: ProtocolError) -> None:
        """Count a frame refused for its size (its log line is the connection's own)."""
        if isinstance(exc, FrameTooLarge):
            self._metrics.limit_hits.labels(limit="frame").inc()


def _peer(sock: socket.socket) -> str:
    """host:port of a connection's peer, for log lines."""
    try:
        peer = sock.getpeername()
    except OSError:
        return "?"
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
