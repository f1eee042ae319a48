"""Announce this agent to each center's registration port, at start and every interval."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

import structlog

from agent import __version__
from agent.config import AgentConfig
from protocol.errors import ConnectionClosed, ProtocolError
from protocol.messages import Error, Register, Registered, Resources
from protocol.settings import HostPort
from protocol.stream import Connection, open_handshake

CONNECT_TIMEOUT_S = 5.0
ATTEMPT_TIMEOUT_S = 10.0
FIRST_RETRY_S = 0.5
STATUS_TEXT = {
    0: "pending: an operator must approve this agent",
    1: "enabled",
    2: "unreachable: the center could not dial this agent yet",
    -1: "deleted: an operator removed this agent",
}
log = structlog.get_logger("agent.registration")


class RegistrationError(Exception):
    """One registration attempt failed; the message says why (never fatal)."""


class Registrar:
    """Keeps every configured center told where this agent listens (over mutual TLS when
    `tls`, a client context, is given)."""

    def __init__(
        self,
        config: AgentConfig,
        advertise: HostPort,
        resources: Callable[[], Resources],
        *,
        key: str = "",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._config = config
        self._key = key
        self._advertise = advertise
        self._resources = resources
        self._tls = tls
        self.last: dict[HostPort, Registered] = {}

    async def run(self) -> None:
        """Register with every center forever (cancel to stop)."""
        async with asyncio.TaskGroup() as group:
            for center in self._config.agent_center:
                group.create_task(self._keep_registered(center))

    async def _keep_registered(self, center: HostPort) -> None:
        """Register with one center forever: backoff until it first works, then every interval."""
        interval_s = self._config.agent_register_interval_s
        retry_s = min(FIRST_RETRY_S, interval_s)
        while True:
            try:
                self._note(center, await self.register_once(center))
            except Exception as exc:  # RegistrationError, or a bug: either way, never crash
                delay_s = retry_s if center not in self.last else interval_s
                bug = not isinstance(exc, RegistrationError)
                log.warning(
                    "agent.register_failed",
                    center=str(center),
                    error=str(exc),
                    retry_s=round(delay_s, 3),
                    exc_info=bug,
                )
                retry_s = min(retry_s * 2, interval_s)
                await asyncio.sleep(delay_s)
                continue
            await asyncio.sleep(interval_s)

    def _note(self, center: HostPort, reply: Registered) -> None:
        """Remember the center's answer and log it."""
        changed = self.last.get(center) != reply
        self.last[center] = reply
        # Once per change at info; the same answer every interval would only be noise.
        emit = log.info if changed else log.debug
        emit(
            "agent.registered",
            center=str(center),
            agent_id=reply.agent_id,
            status=reply.status,
            meaning=STATUS_TEXT.get(reply.status, "unknown status"),
        )

    def register_message(self) -> Register:
        """The Register this agent sends: where to dial it, and what it offers."""
        config = self._config
        return Register(
            name=config.agent_name,
            host=self._advertise.host,
            port=self._advertise.port,
            version=__version__,
            labels=dict(config.agent_labels),
            resources=self._resources(),
            users=list(config.agent_allowed_users),
            allow_root=config.agent_allow_root,
            agent_key=self._key,
        )

    async def register_once(self, center: HostPort) -> Registered:
        """One connect, handshake, register, reply; RegistrationError on any failure."""
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT_S):
                return await self._exchange(center)
        except TimeoutError:
            raise RegistrationError(f"no answer within {ATTEMPT_TIMEOUT_S:g} s") from None
        except (OSError, ConnectionClosed, ProtocolError) as exc:
            raise RegistrationError(str(exc) or type(exc).__name__) from None

    async def _exchange(self, center: HostPort) -> Registered:
        """Connect, authenticate as an agent, send Register, read the answer."""
        config = self._config
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(center.host, center.port, ssl=self._tls)
        conn = Connection(reader, writer, max_frame_bytes=config.agent_max_frame_bytes)
        try:
            await open_handshake(
                conn, config.secret, role="agent", name=config.agent_name, version=__version__
            )
            conn.send(self.register_message())
            await conn.drain()
            reply = await conn.recv()
        finally:
            await conn.close()
        if isinstance(reply, Error):
            raise RegistrationError(f"center refused: {reply.code}: {reply.message}")
        if not isinstance(reply, Registered):
            raise RegistrationError(f"center answered {reply.CALL!r} instead of 'registered'")
        return reply
