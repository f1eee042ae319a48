"""One persistent, authenticated connection per approved agent: dial, ping, read, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from center.routing import AgentInfo
from protocol import auth
from protocol.clock import now_ms, now_us
from protocol.errors import ConnectionClosed, ProtocolError
from protocol.messages import AgentState, Error, Message, Ping, Pong
from protocol.stream import Connection, open_handshake
from protocol.tls import LinkTls
from protocol.vocabulary import CertRole

log = structlog.get_logger("center.agent_pool")


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSettings:
    secrets: tuple[bytes, ...]
    center_name: str
    ping_interval_s: float
    offline_after_s: float
    reconnect_max_s: float
    max_frame_bytes: int
    connect_timeout_s: float = 3.0
    tls: LinkTls | None = None  # None: plain text


class PoolListener:
    """What the pool tells the service; the service overrides what it needs."""

    def ping_epoch(self) -> int:
        """The epoch every ping carries: the leader's."""
        return 0

    def on_report(self, aid: int, message: Message) -> None:
        """A run report (started, finished, output, daemon status) arrived."""

    def on_pong(self, aid: int, pong: Pong) -> None:
        """An agent answered a ping."""

    def on_connected(self, aid: int, state: AgentState) -> None:
        """An agent connection was authenticated and the agent told its state."""

    def on_disconnected(self, aid: int) -> None:
        """An agent connection was lost."""

    def on_stale_epoch(self, aid: int, message: str) -> None:
        """An agent obeys a higher epoch than ours: another center leads."""

    def on_identity_refused(self, aid: int, reason: str) -> None:
        """What answered at an agent's address is not that agent: nothing was sent to it."""


class IdentityRefused(ProtocolError):
    """The peer at an agent's address proved another identity (or none)."""


def identity_refusal(info: AgentInfo, conn: Connection, state: AgentState) -> str | None:
    """Why the peer a center dialled is not the agent `info` names (None: it is): its name,
    in the handshake and its state, and, once the agent's key is bound, its key's proof."""
    names = {conn.peer_name, state.agent_name or conn.peer_name}
    if names != {info.name}:
        return f"agent {info.name!r} expected at {info.ip}:{info.port}, {sorted(names)} answered"
    if info.key_hash and not auth.identity_ok(
        info.key_hash, conn.session_nonce, info.name, state.key_proof
    ):
        return f"the peer at {info.ip}:{info.port} cannot prove it holds {info.name!r}'s key"
    return None


class AgentLink:
    """Keeps one agent connected until closed; `conn` is None while it is down."""

    def __init__(self, info: AgentInfo, settings: LinkSettings, listener: PoolListener) -> None:
        self.info = info
        self.conn: Connection | None = None
        self.down_since_mono = time.monotonic()
        self._settings = settings
        self._listener = listener
        self._last_seen_mono = 0.0
        self._task = asyncio.create_task(self._run(), name=f"agent-link-{info.id}")

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.closing

    def send(self, messages: list[Message]) -> bool:
        """Queue frames on the connection; False when the agent is not connected."""
        conn = self.conn
        if conn is None or conn.closing:
            return False
        conn.send_many(messages)
        return True

    def send_bytes(self, frames: bytes) -> bool:
        """Queue frames encoded beforehand; False when the agent is not connected."""
        conn = self.conn
        if conn is None or conn.closing:
            return False
        conn.send_bytes(frames)
        return True

    async def drain(self) -> None:
        conn = self.conn
        if conn is not None:
            with contextlib.suppress(ConnectionClosed):
                await conn.drain()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        backoff_s = 0.2
        while True:
            try:
                await self._session()
                backoff_s = 0.2
            except (OSError, TimeoutError, ConnectionClosed) as exc:
                log.info(
                    "agent.unreachable",
                    aid=self.info.id,
                    address=f"{self.info.ip}:{self.info.port}",
                    reason=str(exc) or type(exc).__name__,
                )
            except ProtocolError as exc:
                log.warning("agent.protocol_error", aid=self.info.id, reason=str(exc))
            await asyncio.sleep(backoff_s * random.uniform(0.8, 1.2))
            backoff_s = min(backoff_s * 2, self._settings.reconnect_max_s)

    async def _session(self) -> None:
        s = self._settings
        context = s.tls.client_context() if s.tls else None
        async with asyncio.timeout(s.connect_timeout_s):
            reader, writer = await asyncio.open_connection(
                self.info.ip, self.info.port, ssl=context
            )
        conn = Connection(reader, writer, max_frame_bytes=s.max_frame_bytes)
        try:
            if s.tls and (problem := self._cert_problem(s.tls, conn)):
                self._listener.on_identity_refused(self.info.id, problem)
                raise IdentityRefused(problem)
            await open_handshake(conn, s.secrets, role="center", name=s.center_name)
            state = await asyncio.wait_for(conn.recv(), s.connect_timeout_s)
            if not isinstance(state, AgentState):
                raise ProtocolError(f"expected state after handshake, got {type(state).__name__}")
            if (refusal := identity_refusal(self.info, conn, state)) is not None:
                self._listener.on_identity_refused(self.info.id, refusal)
                raise IdentityRefused(refusal)
            self.conn, self._last_seen_mono = conn, time.monotonic()
            log.info(
                "agent.connected",
                aid=self.info.id,
                name=conn.peer_name,
                agent_epoch=state.epoch,
                running=len(state.running),
            )
            self._listener.on_connected(self.info.id, state)
            await self._serve(conn)
        finally:
            if self.conn is conn:
                self.conn = None
                self.down_since_mono = self._last_seen_mono  # silent since then, not since now
                self._listener.on_disconnected(self.info.id)
            await conn.close()

    def _cert_problem(self, tls: LinkTls, conn: Connection) -> str:
        """Why the certificate at the agent's address is not the agent's: another role, another
        name, or revoked ("" when it is), before a byte of ours is sent."""
        problem = tls.peer_problem(conn.peer_cert_der, CertRole.AGENT, self.info.name, now_us())
        return f"certificate at {self.info.ip}:{self.info.port}: {problem}" if problem else ""

    async def _serve(self, conn: Connection) -> None:
        # A plain task, not a TaskGroup: the reconnect loop must see ConnectionClosed itself,
        # not wrapped in an ExceptionGroup.
        pinger = asyncio.create_task(self._ping(conn), name=f"agent-ping-{self.info.id}")
        try:
            await self._read(conn)
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await pinger

    async def _ping(self, conn: Connection) -> None:
        s = self._settings
        while not conn.closing:  # a lost connection ends the reader, which ends us
            if time.monotonic() - self._last_seen_mono > s.offline_after_s:
                log.warning("agent.silent", aid=self.info.id, silent_s=round(s.offline_after_s, 1))
                await conn.close()
                return
            # No drain: behind a burst the wait would be long, and behind an agent that stopped
            # reading endless, so that it would never be found silent. An agent reading a
            # burst sends pongs of its own meanwhile (agent/server.py, ALIVE_EVERY_S).
            conn.send(Ping(epoch=self._listener.ping_epoch(), sent_ms=now_ms()))
            await asyncio.sleep(s.ping_interval_s)

    async def _read(self, conn: Connection) -> None:
        listener, aid = self._listener, self.info.id
        while True:
            message = await conn.recv()
            self._last_seen_mono = time.monotonic()
            if isinstance(message, Pong):
                listener.on_pong(aid, message)
            elif isinstance(message, Error):
                self._on_error(message)
            elif isinstance(message, AgentState):
                raise ProtocolError("state sent twice")
            else:
                listener.on_report(aid, message)

    def _on_error(self, message: Error) -> None:
        if message.code == "stale_epoch":
            self._listener.on_stale_epoch(self.info.id, message.message)
        else:
            log.warning("agent.error", aid=self.info.id, code=message.code, message=message.message)


class AgentPool:
    """Links for every approved agent; `sync` starts, restarts and stops them."""

    def __init__(self, settings: LinkSettings, listener: PoolListener) -> None:
        self._settings = settings
        self._listener = listener
        self.links: dict[int, AgentLink] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def sync(self, agents: Mapping[int, AgentInfo]) -> None:
        for aid, link in list(self.links.items()):
            info = agents.get(aid)
            if info is None or not info.approved or info.address != link.info.address:
                self._drop(aid)
        for aid, info in agents.items():
            if info.approved and aid not in self.links:
                self.links[aid] = AgentLink(info, self._settings, self._listener)

    def link(self, aid: int) -> AgentLink | None:
        return self.links.get(aid)

    def connected(self, aid: int) -> bool:
        link = self.links.get(aid)
        return link is not None and link.connected

    def _drop(self, aid: int) -> None:
        link = self.links.pop(aid)
        task = asyncio.create_task(link.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        links, self.links = list(self.links.values()), {}
        await asyncio.gather(
            *(link.close() for link in links), *self._closing, return_exceptions=True
        )
