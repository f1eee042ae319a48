"""The built-in PKI on real links: the default center and agent speak mutual TLS, an on-path
relay cannot inject a command, and bad certificates are refused with a log line and a count."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from admin.actor import Actor
from admin.permissions import User
from admin.services.agents import delete_agent
from center import pki, pki_admin
from center.agent_pool import AgentLink
from center.service import CenterService
from center.store.db import upgrade_database
from center.tables import agents, cert_revoked, task_process
from protocol import certs, statuses
from protocol.codec import encode
from protocol.errors import ConnectionClosed, ProtocolError
from protocol.messages import Error, Message, Register, Registered
from protocol.stream import Connection, open_handshake
from protocol.tls import TlsMaterial, material_context
from tests.agent.peer import exec_msg
from tests.integration.cluster import (
    SECRET,
    add_group,
    add_rule,
    approve_agent,
    now_us,
    poll,
    running_agent,
    running_center,
    runs_of,
)
from tests.security.relay import Relay

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
WAIT_S = 20.0


@pytest.fixture
async def db_url(sqlite_url: str) -> str:
    """SQLite: these are attacks on the links, not on the store."""
    async with asyncio.timeout(60):
        await upgrade_database(sqlite_url)
    return sqlite_url


def _counted(center: CenterService, kind: str) -> float:
    value = center.metrics.registry.get_sample_value("unitedcron_tls_refused_total", {"kind": kind})
    return value or 0.0


async def _connected_link(center: CenterService, aid: int, other_than: object = None) -> AgentLink:
    async def up() -> AgentLink | None:
        leader = center.leader
        link = leader.pool.links.get(aid) if leader else None
        if link is not None and link.connected and link.conn is not other_than:
            return link
        return None

    return await poll(up, WAIT_S)


async def _register(
    port: int, reg: Register, material: TlsMaterial | None, trusted: str
) -> Message:
    """One registration as a client holding `material` (or none); the center's answer."""
    context = material_context(material, trusted, server=False)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    conn = Connection(reader, writer)
    try:
        await open_handshake(conn, (SECRET.encode(),), role="agent", name=reg.name)
        conn.send(reg)
        await conn.drain()
        return await conn.recv()
    finally:
        await conn.close()


def _agent_material(ca: pki.ClusterCa, name: str, at_us: int, lifetime_s: int) -> TlsMaterial:
    key_pem = certs.new_key_pem()
    cert = pki.sign_csr(ca, certs.make_csr(key_pem, name), name, at_us, lifetime_s)
    return TlsMaterial(cert.encode(), key_pem, ca.cert_pem)


async def test_default_link_is_mutual_tls_and_an_injected_exec_runs_nothing(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """With no TLS settings the link is TLS (the relay sees no protocol bytes); bytes injected
    after the handshake make the agent drop the link, nothing runs, and the center reconnects
    and runs rules again."""
    relay, marker = Relay(), Path(f"/tmp/unitedcron-injected-{secrets.token_hex(6)}")
    relay_port = await relay.start()
    advertise = f"127.0.0.1:{relay_port}"
    try:
        async with (
            running_center(db_url) as center,
            running_agent(tmp_path, center.registration_port, agent_advertise=advertise) as agent,
        ):
            relay.target_port = agent.port
            aid = await approve_agent(engine, "agent-1", await add_group(engine))
            link = await _connected_link(center, aid)
            assert link.conn is not None and link.conn.peer_cert_der is not None
            assert b"hello" not in relay.seen and b"call" not in relay.seen, "plain text seen"
            assert relay.connections >= 1
            relay.inject(encode(exec_msg(f"/usr/bin/touch {marker}", epoch=1 << 40)))
            again = await _connected_link(center, aid, other_than=link.conn)
            assert again.conn is not None and again.conn.peer_cert_der is not None
            task_id = await add_rule(engine, [aid], execute="/bin/true")
            success = task_process.c.status == statuses.SUCCESS
            await poll(lambda: runs_of(engine, task_id, success), WAIT_S)
        assert not await asyncio.to_thread(marker.exists), "the injected exec ran"
    finally:
        await relay.close()
        await asyncio.to_thread(marker.unlink, missing_ok=True)


@pytest.fixture
async def center(db_url: str) -> AsyncIterator[CenterService]:
    async with running_center(db_url) as service:
        yield service


async def _refused(port: int, reg: Register, material: TlsMaterial | None, trusted: str) -> str:
    """What the client saw of a refusal: an error frame's words, or a dropped connection."""
    try:
        reply = await _register(port, reg, material, trusted)
    except (ProtocolError, ConnectionClosed, OSError) as exc:
        return f"dropped: {exc}"
    assert isinstance(reply, Error), f"accepted: {reply}"
    return reply.message


async def test_plain_text_client_on_the_tls_port_is_refused(center: CenterService) -> None:
    before = _counted(center, "handshake")
    reader, writer = await asyncio.open_connection("127.0.0.1", center.registration_port)
    writer.write(b"$5\r\nhello\r\n")
    async with asyncio.timeout(WAIT_S):
        assert await reader.read() in (b"", b"\x15\x03\x01\x00\x02\x02\x16")  # EOF or a TLS alert
    writer.close()
    await poll(lambda: _ready(_counted(center, "handshake") > before), WAIT_S)


async def _ready(condition: bool) -> bool | None:
    return True if condition else None


@pytest.mark.parametrize(
    ("case", "kind", "words"),
    [
        ("another_ca", "handshake", "dropped"),
        ("expired", "handshake", "dropped"),
        ("center_role", "certificate", "a center certificate cannot act as a agent"),
        ("another_name", "certificate", "names 'web-a', not 'web-b'"),
        ("revoked", "certificate", "is revoked"),
    ],
)
async def test_bad_certificates_are_refused_and_counted(
    center: CenterService, engine: AsyncEngine, case: str, kind: str, words: str
) -> None:
    """Each bad certificate is refused by the registration port, counted under its kind, and
    leaves no agent row behind."""
    ca, at_us = center.tls.signing_ca(), now_us()
    trusted, name = center.tls.bundle, "web-b"
    if case == "another_ca":
        rogue_pem, rogue_key = pki.new_ca("rogue", at_us)
        rogue = pki.ClusterCa(0, rogue_pem, rogue_key, "active", certs.inspect_cert(rogue_pem), "")
        material = _agent_material(rogue, name, at_us, 86400)
        material = TlsMaterial(material.cert_pem, material.key_pem, trusted)
    elif case == "expired":
        material = _agent_material(ca, name, at_us - 100 * 86_400_000_000, 86400)
    elif case == "center_role":
        material = TlsMaterial(*pki.center_identity(ca, name, at_us), trusted)
    elif case == "another_name":
        material = _agent_material(ca, "web-a", at_us, 86400)
    else:
        material = _agent_material(ca, name, at_us, 86400)
        serial = certs.inspect_cert(material.cert_pem).serial
        async with engine.begin() as conn:
            await conn.execute(
                insert(cert_revoked).values(serial=serial, aid=0, not_after=at_us + 86400 * 10**6)
            )
        await poll(lambda: _ready(serial in center.tls.link.revoked), WAIT_S)
    before = _counted(center, kind)
    reg = Register(name=name, host="127.0.0.1", port=1)
    assert words in await _refused(center.registration_port, reg, material, trusted)
    await poll(lambda: _ready(_counted(center, kind) > before), WAIT_S)
    async with engine.connect() as conn:
        assert await conn.scalar(select(agents.c.id).where(agents.c.name == name)) is None


async def test_csr_in_another_name_is_refused(center: CenterService, engine: AsyncEngine) -> None:
    """A CSR naming another agent gets no certificate: the answer says why, and it is counted."""
    before = _counted(center, "csr")
    csr = certs.make_csr(certs.new_key_pem(), "web-x")
    reg = Register(name="web-c", host="127.0.0.1", port=1, csr=csr)
    reply = await _register(center.registration_port, reg, None, "")
    assert isinstance(reply, Registered) and reply.cert == ""
    assert "csr: it names 'web-x', not this agent 'web-c'" in reply.note
    assert _counted(center, "csr") == before + 1


async def test_agent_refuses_a_peer_with_an_agent_certificate(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """A host holding an agent's certificate (and the secret) cannot act as a center: the
    agent drops it after TLS, before any frame, and counts it."""
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port) as agent,
    ):
        aid = await approve_agent(engine, "agent-1", await add_group(engine))
        await _connected_link(center, aid)
        material = _agent_material(center.tls.signing_ca(), "agent-1", now_us(), 86400)
        context = material_context(material, center.tls.bundle, server=False)
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.port, ssl=context)
        async with asyncio.timeout(WAIT_S):
            assert await reader.read() == b""
        writer.close()
        refused = agent.metrics.registry.get_sample_value("unitedcron_agent_tls_refused_total")
        assert refused == 1.0


async def test_ca_rotation_keeps_every_link(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """Rotate: the agent gets a certificate of the new CA at its next registration; retire the
    old: the center renews its own, and a fresh connection still works both ways."""
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port) as agent,
    ):
        aid = await approve_agent(engine, "agent-1", await add_group(engine))
        link = await _connected_link(center, aid)
        old_ca = center.tls.signing_ca().key_id
        await pki_admin.rotate(db_url, (SECRET.encode(),), "test")
        new_ca = await poll(lambda: _ready_value(center.tls.signing_ca().key_id, old_ca), WAIT_S)

        async def agent_on_new_ca() -> bool | None:
            material = agent.tls.link.material
            info = certs.inspect_cert(material.cert_pem) if material else None
            return True if info is not None and info.issuer_key_id == new_ca else None

        await poll(agent_on_new_ca, WAIT_S)
        done, message = await pki_admin.retire(db_url, force=False)
        assert done, message
        await poll(lambda: _ready(old_ca not in center.tls.trusted_key_ids), WAIT_S)
        assert link.conn is not None
        await link.conn.close()
        again = await _connected_link(center, aid, other_than=link.conn)
        assert again.conn is not None
        issuer = certs.inspect_cert(again.conn.peer_cert_der or b"").issuer_key_id
        assert issuer == new_ca


async def _ready_value(value: str, unlike: str) -> str | None:
    return value if value != unlike else None


async def test_deleting_an_agent_revokes_its_certificate(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """The admin deletes an enrolled agent: its serial is revoked, the center drops it from
    the links it keeps, and a registration with that certificate is refused."""
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port) as agent,
    ):
        aid = await approve_agent(engine, "agent-1", await add_group(engine))
        await _connected_link(center, aid)
        material = agent.tls.link.material
        assert material is not None
        serial = certs.inspect_cert(material.cert_pem).serial
        await delete_agent(engine, Actor(User(id=1, name="root", superadmin=True)), aid)
        async with engine.connect() as conn:
            revoked = await conn.scalar(
                select(cert_revoked.c.aid).where(cert_revoked.c.serial == serial)
            )
        assert revoked == aid
        await poll(lambda: _ready(serial in center.tls.link.revoked), WAIT_S)
        before = _counted(center, "certificate")
        reg = Register(name="agent-1", host="127.0.0.1", port=1)
        assert "is revoked" in await _refused(
            center.registration_port, reg, material, center.tls.bundle
        )
        assert _counted(center, "certificate") == before + 1
