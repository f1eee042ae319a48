"""Registration: the agent announces its advertised address to each center, and retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import structlog

from agent import __version__
from agent.config import AgentConfig
from protocol.messages import Register, Registered
from protocol.stream import Connection, accept_handshake
from tests.agent.peer import SECRETS, WAIT_S, running, wait_for


class RegistrationListener:
    """A test center's registration port: records each Register, answers Registered."""

    def __init__(self, status: int = 0, binding: bytes = b"") -> None:
        self.status = status
        self.binding = binding  # under TLS: certs.channel_binding of our certificate
        self.registers: asyncio.Queue[Register] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer)
        try:
            await accept_handshake(
                conn, SECRETS, name="test-center", expect_role="agent", binding=self.binding
            )
            register = await conn.recv()
            assert isinstance(register, Register)
            conn.send(Registered(agent_id=42, status=self.status))
            await conn.drain()
            await self.registers.put(register)
        finally:
            await conn.close()


@pytest.fixture
async def listener() -> AsyncIterator[RegistrationListener]:
    center = RegistrationListener()
    center.server = await asyncio.start_server(center.on_connect, "127.0.0.1", 0)
    try:
        yield center
    finally:
        center.server.close()


async def test_register_carries_bound_port(
    make_config: Callable[..., AgentConfig], listener: RegistrationListener
) -> None:
    """The Register names the agent, its bound port, labels, users and version."""
    config = make_config(
        agent_center=f"127.0.0.1:1,{listener.address}",
        agent_labels="rack=r1,zone=a",
        agent_allowed_users="nobody",
        agent_register_interval_s=0.1,
    )
    with structlog.testing.capture_logs() as logs:
        async with running(config) as agent:
            async with asyncio.timeout(WAIT_S):
                register = await listener.registers.get()
                await listener.registers.get()  # a second one: the first reply was handled
            assert agent.port > 0
            assert (register.host, register.port) == ("127.0.0.1", agent.port)
            assert register.name == "test-agent" and register.version == __version__
            assert register.labels == {"rack": "r1", "zone": "a"}
            assert register.users == ["nobody"]
    registered = [e for e in logs if e["event"] == "agent.registered"]
    assert registered[0]["agent_id"] == 42 and registered[0]["status"] == 0
    assert registered[0]["meaning"] == "pending: an operator must approve this agent"
    assert any(e["event"] == "agent.register_failed" for e in logs)  # 127.0.0.1:1 refused


async def test_advertise_setting_wins(
    make_config: Callable[..., AgentConfig], listener: RegistrationListener
) -> None:
    """An explicit advertise address is what the center is told to dial."""
    config = make_config(agent_center=listener.address, agent_advertise="10.1.2.3:7000")
    async with running(config):
        async with asyncio.timeout(WAIT_S):
            register = await listener.registers.get()
    assert (register.host, register.port) == ("10.1.2.3", 7000)


async def test_registration_retries_until_center_appears(
    make_config: Callable[..., AgentConfig],
) -> None:
    """A center that is down at start gets the Register once it listens (retry with backoff)."""
    center = RegistrationListener(status=1)
    probe = await asyncio.start_server(center.on_connect, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    config = make_config(agent_center=f"127.0.0.1:{port}", agent_register_interval_s=5)
    with structlog.testing.capture_logs() as logs:
        async with running(config) as agent:
            await wait_for(lambda: any(e["event"] == "agent.register_failed" for e in logs))
            async with asyncio.timeout(WAIT_S):
                center.server = await asyncio.start_server(center.on_connect, "127.0.0.1", port)
                try:
                    register = await center.registers.get()
                finally:
                    center.server.close()
            assert register.port == agent.port
