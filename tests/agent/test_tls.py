"""Mutual TLS on the agent port and to the registration port, with openssl-made certificates."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog
from pydantic import ValidationError

from agent.config import AgentConfig
from agent.service import AgentService, RunState
from protocol.certs import channel_binding, first_der
from protocol.codec import encode
from protocol.errors import AuthError, ConnectionClosed
from protocol.messages import AgentState, Hello
from protocol.stream import Connection
from protocol.tls import TlsFiles, files_context
from tests.agent.certs import Certs
from tests.agent.peer import WAIT_S, CenterPeer, exec_msg, running, wait_for
from tests.agent.test_registration import RegistrationListener


def _tls_settings(files: TlsFiles) -> dict[str, Path]:
    return {"agent_tls_ca": files.ca, "agent_tls_cert": files.cert, "agent_tls_key": files.key}


def _refusals(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == "agent.tls_refused"]


async def _nothing_ran(agent: AgentService, center_tls: ssl.SSLContext, runid: str) -> None:
    """The agent still serves a real center, and never saw the run id."""
    peer = await CenterPeer.connect(agent.port, tls=center_tls)
    try:
        await peer.sync(epoch=1)
    finally:
        await peer.close()
    assert agent.control.runs == {} and not agent.outbox.seen(runid)
    assert agent.outbox.count == 0


async def test_tls_center_runs_a_job(make_config: Callable[..., AgentConfig], certs: Certs) -> None:
    """A center with a certificate of the cluster CA gets through TLS and the secret handshake
    and runs a job, reported back over the TLS connection."""
    async with running(make_config(**_tls_settings(certs.agent))) as agent:
        peer = await CenterPeer.connect(agent.port, tls=files_context(certs.center, server=False))
        try:
            assert isinstance(await peer.recv(), AgentState)
            assert peer.conn._writer.get_extra_info("ssl_object") is not None
            finished = await peer.run(exec_msg("/usr/bin/id -un"))
        finally:
            await peer.close()
    assert (finished.status, finished.output) == ("success", b"nobody\n")


async def test_plain_tcp_client_gets_nothing_through(
    make_config: Callable[..., AgentConfig], certs: Certs
) -> None:
    """A plain-TCP client (with the secret, even) is dropped at the TLS layer: its hello and
    exec are never read as frames, one `agent.tls_refused` line, and the agent keeps serving."""
    msg = exec_msg("/usr/bin/touch /tmp/never")
    with structlog.testing.capture_logs() as logs:
        async with running(make_config(**_tls_settings(certs.agent))) as agent:
            async with asyncio.timeout(WAIT_S):
                reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
                conn = Connection(reader, writer)
                hello = Hello(role="center", name="plain", nonce=b"n" * 32)
                writer.write(encode(hello) + encode(msg))
                with pytest.raises(ConnectionClosed):
                    await conn.recv()
                await conn.close()
            await wait_for(lambda: bool(_refusals(logs)))
            await _nothing_ran(agent, files_context(certs.center, server=False), msg.ref.runid)
    refused = _refusals(logs)
    assert len(refused) == 1 and str(refused[0]["peer"]).startswith("127.0.0.1:")
    assert refused[0]["reason"]


async def test_certificate_of_another_ca_is_refused(
    make_config: Callable[..., AgentConfig], certs: Certs
) -> None:
    """A client whose certificate comes from a rogue CA fails the TLS handshake: nothing it
    sends is read, one log line says why, and the agent keeps serving."""
    with structlog.testing.capture_logs() as logs:
        async with running(make_config(**_tls_settings(certs.agent))) as agent:
            with pytest.raises((AuthError, ConnectionClosed, OSError)):
                peer = await CenterPeer.connect(
                    agent.port, tls=files_context(certs.rogue, server=False)
                )
                await peer.close()
            await wait_for(lambda: bool(_refusals(logs)))
            await _nothing_ran(agent, files_context(certs.center, server=False), "none")
    refused = _refusals(logs)
    assert len(refused) == 1 and "certificate" in str(refused[0]["reason"]).lower()


async def test_client_without_certificate_is_refused(
    make_config: Callable[..., AgentConfig], certs: Certs
) -> None:
    """TLS without a client certificate is refused too: the check is mutual."""
    anonymous = ssl.create_default_context(cafile=str(certs.center.ca))
    anonymous.check_hostname = False
    with structlog.testing.capture_logs() as logs:
        async with running(make_config(**_tls_settings(certs.agent))) as agent:
            with pytest.raises((AuthError, ConnectionClosed, OSError)):
                peer = await CenterPeer.connect(agent.port, tls=anonymous)
                await peer.close()
            await wait_for(lambda: bool(_refusals(logs)))
    assert len(_refusals(logs)) == 1


async def test_registration_over_tls(make_config: Callable[..., AgentConfig], certs: Certs) -> None:
    """The agent registers through mutual TLS with a registration port that requires it."""
    binding = channel_binding(first_der(certs.center.cert.read_bytes()))
    listener = RegistrationListener(binding=binding)
    listener.server = await asyncio.start_server(
        listener.on_connect, "127.0.0.1", 0, ssl=files_context(certs.center, server=True)
    )
    try:
        config = make_config(agent_center=listener.address, **_tls_settings(certs.agent))
        async with running(config) as agent:
            async with asyncio.timeout(WAIT_S):
                register = await listener.registers.get()
        assert register.port == agent.port and register.name == "test-agent"
    finally:
        listener.server.close()


def test_tls_settings_all_or_none(tmp_path: Path, certs: Certs) -> None:
    """Only some of the three TLS files is a settings error naming the missing ones."""
    with pytest.raises(
        ValidationError,
        match="agent_tls_ca, agent_tls_cert, agent_tls_key: "
        "TLS needs ca, cert and key; missing: cert, key",
    ):
        AgentConfig(secret="s" * 16, agent_tls_ca=certs.agent.ca)
    assert AgentConfig(secret="s" * 16).tls is None


async def test_unreadable_tls_file_stops_the_start(
    make_config: Callable[..., AgentConfig], certs: Certs, tmp_path: Path
) -> None:
    """A TLS file that cannot be read fails the start with an error naming it."""
    files = TlsFiles(certs.agent.ca, tmp_path / "missing.pem", certs.agent.key)
    service = AgentService(make_config(**_tls_settings(files)))
    with pytest.raises(OSError, match="No such file"):
        async with asyncio.timeout(WAIT_S):
            await service.start()
    assert service.state is RunState.STOPPED
