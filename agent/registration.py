"""Announce this agent to each center's registration port, at start and every interval."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from agent import __version__
from agent.config import AgentConfig
from agent.enrolment import AgentTls
from protocol.errors import ConnectionClosed, ProtocolError
from protocol.messages import Error, Register, Registered, Resources
from protocol.settings import HostPort
from protocol.stream import Connection, open_handshake

CONNECT_TIMEOUT_S = 5.0
ATTEMPT_TIMEOUT_S = 10.0
FIRST_RETRY_S = 0.5
ENROL_EVERY_S = 2.0  # waiting for a certificate: ask again this often, so approval takes soon
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
    """Keeps every configured center told where this agent listens, and takes the CAs and
    the certificate the built-in PKI hands back."""

    def __init__(
        self,
        config: AgentConfig,
        advertise: HostPort,
        resources: Callable[[], Resources],
        *,
        tls: AgentTls,
        key: str = "",
    ) -> None:
        self._config = config
        self._key = key
        self._advertise = advertise
        self._resources = resources
        self._tls = tls
        self.last: dict[HostPort, Registered] = {}
        self._soon = {center: asyncio.Event() for center in config.agent_center}

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
            await self._pause(
                center, min(interval_s, ENROL_EVERY_S) if self._tls.waiting else interval_s
            )

    def register_soon(self) -> None:
        """Register again now: a center dialled us while we wait for a certificate, so we were
        approved, and the certificate is waiting for us at the next registration."""
        for event in self._soon.values():
            event.set()

    async def _pause(self, center: HostPort, delay_s: float) -> None:
        soon = self._soon[center]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay_s):
                await soon.wait()
        soon.clear()

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
            certificate=reply.note or None,
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
            csr=self._tls.csr,
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
        context = self._tls.registration_context()
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(center.host, center.port, ssl=context)
        conn = Connection(reader, writer, max_frame_bytes=config.agent_max_frame_bytes)
        try:
            if context is not None and (problem := self._tls.center_problem(conn.peer_cert_der)):
                raise RegistrationError(f"not a center of this cluster: {problem}")
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
        self._tls.accept(reply)
        return reply
