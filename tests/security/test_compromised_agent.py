"""A compromised agent host holds the cluster secret: what it can and cannot do to the rest."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from admin.actor import Actor
from admin.permissions import User
from admin.services.agents import delete_agent
from agent.service import AgentService
from center import pki
from center.routing import AGENT_PENDING
from center.service import CenterService
from center.store.db import upgrade_database
from center.tables import agents, audit_log, task_process
from protocol import auth, certs, statuses
from protocol.messages import (
    Exec,
    Message,
    RunRef,
    RunSpec,
)
from protocol.stream import Connection, open_handshake
from protocol.tls import TlsMaterial, material_context
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
from tests.security.peers import FakeAgent, register_as

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
async def db_url(sqlite_url: str) -> str:
    """SQLite only: these are attacks on the protocol's trust, not on the store."""
    async with asyncio.timeout(60):
        await upgrade_database(sqlite_url)
    return sqlite_url


async def _as_center(center: CenterService, agent: AgentService, messages: list[Message]) -> None:
    """Connect to an agent as a center would, with the cluster secret and a center's certificate
    (a compromised center host), and send `messages`."""
    await poll(lambda: _certified(agent), 15)
    ca, trusted = center.tls.signing_ca(), center.tls.bundle
    material = TlsMaterial(*pki.center_identity(ca, "rogue", now_us()), trusted)
    context = material_context(material, trusted, server=False)
    reader, writer = await asyncio.open_connection("127.0.0.1", agent.port, ssl=context)
    conn = Connection(reader, writer)
    try:
        async with asyncio.timeout(10):
            await open_handshake(conn, (SECRET.encode(),), role="center", name="rogue")
            await conn.recv()  # the agent's state
            conn.send_many(messages)
            await conn.drain()
            await asyncio.sleep(2)  # time for the agent to act on them, if it would
    finally:
        await conn.close()


async def _certified(agent: AgentService) -> bool | None:
    return None if agent.tls.waiting else True


def _exec(n: int, run_user: str, marker: Path) -> Exec:
    return Exec(
        epoch=2**62,  # above any leader's: the agent cannot tell a rogue center by its epoch
        ref=RunRef(runid=f"rogue-{n}", task_id=10**6 + n, sched_us=1),
        spec=RunSpec(task_id=10**6 + n, command=f"/usr/bin/touch {marker}", run_user=run_user),
    )


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder in /tmp that nobody may write to (tmp_path is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="uc-rogue-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


async def test_a_rogue_center_cannot_run_outside_the_agents_policy(
    db_url: str, engine: AsyncEngine, tmp_path: Path, open_folder: Path
):
    """With the secret, posing as a center to another agent, it asks for a job as root and as
    a user the agent does not allow: neither runs (the agent's run_user policy is its own).
    As the one user allowed, it does run: the limit the README states."""
    users = ["root", "daemon", "nobody"]
    markers = [open_folder / f"as-{user}" for user in users]
    execs = [_exec(n, user, markers[n]) for n, user in enumerate(users)]
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port, agent_allowed_users="nobody") as agent,
    ):
        await approve_agent(engine, "agent-1", await add_group(engine))
        await _as_center(center, agent, execs)
    assert _existing(markers) == [False, False, True]


def _existing(paths: list[Path]) -> list[bool]:
    return [p.exists() for p in paths]


async def test_a_host_cannot_take_over_another_agents_runs(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A compromised host registers, again and again, under the name of an approved agent with
    its own address: it never receives that agent's runs (nor their environment)."""
    gid = await add_group(engine)
    impostor = FakeAgent()
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port, name="web-1"),
        impostor as impostor_port,
    ):
        aid = await approve_agent(engine, "web-1", gid)
        await add_rule(engine, [aid], gid=gid, env='{"DEPLOY_TOKEN": "t0ps3cret"}')
        for _ in range(50):  # the real agent registers every second: register more often
            await register_as(center.registration_port, "web-1", impostor_port)
            await asyncio.sleep(0.2)
            if impostor.execs:
                break
    assert [e.spec.env for e in impostor.execs] == []


async def test_a_reinstalled_host_is_refused_until_an_operator_deletes_the_agent(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A new state dir (a new key) under an approved agent's name is refused and audited; the
    agent keeps its address. Deleted in the admin, it registers again as pending."""
    gid = await add_group(engine)
    async with running_center(db_url) as center:
        async with running_agent(tmp_path / "before", center.registration_port, name="web-1"):
            aid = await approve_agent(engine, "web-1", gid)
            address = await _address(engine, aid)
        async with running_agent(tmp_path / "after", center.registration_port, name="web-1") as new:
            events = await poll(lambda: _audit(engine, "handshake.refused"), 10)
            assert "registered before with another key" in events[0]["after_json"]
            assert new.registrar is not None and new.registrar.last == {}
            assert await _address(engine, aid) == address
            root = Actor(User(id=1, name="root", superadmin=True))
            await delete_agent(engine, root, aid)
            await poll(lambda: _registered_as(new, aid, AGENT_PENDING), 10)
        assert await _address(engine, aid) != address


async def _address(engine: AsyncEngine, aid: int) -> tuple[str, int]:
    async with engine.connect() as conn:
        row = await conn.execute(select(agents.c.ip, agents.c.port).where(agents.c.id == aid))
        ip, port = row.one()
    return str(ip), int(port)


async def _registered_as(agent: AgentService, aid: int, status: int) -> bool:
    assert agent.registrar is not None
    return any((r.agent_id, r.status) == (aid, status) for r in agent.registrar.last.values())


async def test_a_rogue_epoch_does_not_lock_the_leader_out(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A rogue center sends one harmless exec with a huge epoch: the agent goes on running
    the real leader's rules."""
    async with _a_rule_running(db_url, engine, tmp_path) as (center, agent, task_id):
        await _as_center(center, agent, [_exec(1, "nobody", Path("/nonexistent/x"))])
        since = now_us() + 1_000_000
        await poll(lambda: _succeeded_since(engine, task_id, since), 8)


async def test_a_forged_epoch_within_the_step_does_not_unseat_the_leader(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A rogue center sends an epoch a little above the leader's: that one agent refuses the
    leader from then on, but the leader checks its lease, keeps leading for everyone else, and
    writes the forgery to the audit log."""
    async with _a_rule_running(db_url, engine, tmp_path) as (center, agent, _):
        assert center.leader is not None
        epoch = center.leader.epoch
        forged = dataclasses.replace(_exec(1, "nobody", Path("/nonexistent/x")), epoch=epoch + 10)
        await _as_center(center, agent, [forged])
        events = await poll(lambda: _audit(engine, "agent.epoch_forged"), 10)
        assert events[0]["client"] == "agent-1"
        assert center.leader is not None and center.leader.epoch == epoch


@contextlib.asynccontextmanager
async def _a_rule_running(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[tuple[CenterService, AgentService, int]]:
    """A center and an approved agent, with a rule every second that has succeeded once."""
    gid = await add_group(engine)
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port) as agent,
    ):
        aid = await approve_agent(engine, "agent-1", gid)
        task_id = await add_rule(engine, [aid], gid=gid)
        await poll(lambda: _succeeded_since(engine, task_id, 0), 15)
        yield center, agent, task_id


async def _audit(engine: AsyncEngine, action: str) -> list:
    async with engine.connect() as conn:
        query = select(audit_log).where(audit_log.c.action == action)
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def _succeeded_since(engine: AsyncEngine, task_id: int, since_us: int) -> list:
    final = task_process.c.status == statuses.SUCCESS
    return await runs_of(engine, task_id, final, task_process.c.sched_us > since_us)


@pytest.mark.parametrize("answers_as", ["web-2", "web-1"])
async def test_the_center_checks_who_answers_at_an_agents_address(
    db_url: str, engine: AsyncEngine, answers_as: str
):
    """Agent web-1's row points at another host holding the cluster secret (a stale or forged
    address). That host answers as itself, or claims web-1's name without web-1's key: the
    center sends it nothing, and says so in the audit log."""
    gid = await add_group(engine)
    impostor = FakeAgent(answers_as)
    async with impostor as port, running_center(db_url) as center:
        # A host of the cluster: its certificate is a real one, in the name of web-2.
        key_pem = certs.new_key_pem()
        ca = center.tls.signing_ca()
        cert = pki.sign_csr(ca, certs.make_csr(key_pem, "web-2"), "web-2", now_us(), 86400)
        impostor.tls.link.use(TlsMaterial(cert.encode(), key_pem, center.tls.bundle))
        async with engine.begin() as conn:
            result = await conn.execute(
                insert(agents).values(
                    name="web-1",
                    ip="127.0.0.1",
                    port=port,
                    status=1,
                    gid=gid,
                    key_hash=auth.key_hash("web-1's own key"),
                )
            )
            aid = int(result.inserted_primary_key[0])
        await add_rule(engine, [aid], gid=gid, env='{"DEPLOY_TOKEN": "t0ps3cret"}')
        events = await poll(lambda: _audit(engine, "agent.identity_refused"), 15)
        await asyncio.sleep(1.5)  # a rule every second: an exec would have come by now
    assert "web-1" in events[0]["after_json"]
    assert impostor.execs == []
