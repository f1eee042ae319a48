"""Registration keeps operators' decisions: approvals, disables and labels survive it."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.errors import AgentKeyMismatch
from center.tables import agents
from protocol.messages import Register

REG = Register(
    name="web-1",
    host="10.0.0.5",
    port=9501,
    labels={"zone": "a", "role": "web"},
    users=["nobody"],
    allow_root=False,
)


async def test_reregistering_keeps_status_and_merges_labels(engine: AsyncEngine):
    """An approved or disabled agent stays so when it registers again; operator labels win."""
    aid, status = await store.register_agent(engine, REG, "10.0.0.5", 1)
    assert status == 0
    async with engine.begin() as conn:
        await conn.execute(
            update(agents)
            .where(agents.c.id == aid)
            .values(status=1, labels='{"role": "db", "team": "x"}')
        )
    assert await store.register_agent(engine, REG, "10.0.0.6", 2) == (aid, 1)
    info = (await store.load_agents(engine))[aid]
    assert info.ip == "10.0.0.6" and info.allowed_users == ("nobody",) and not info.allow_root
    assert dict(info.labels) == {"zone": "a", "role": "db", "team": "x"}
    async with engine.begin() as conn:
        await conn.execute(update(agents).where(agents.c.id == aid).values(status=-1))
    assert await store.register_agent(engine, REG, "10.0.0.6", 3) == (aid, 0), "deleted: pending"


async def test_an_agents_name_is_bound_to_its_first_key(engine: AsyncEngine):
    """A keyless agent (from before keys) takes the first key it brings; after that, another
    key under its name is refused and changes nothing; forgetting the key readmits a new one."""
    keyless = dataclasses.replace(REG, agent_key="")
    aid, _ = await store.register_agent(engine, keyless, "10.0.0.5", 1)
    mine = dataclasses.replace(REG, agent_key="a" * 64)
    assert (await store.register_agent(engine, mine, "10.0.0.5", 2))[0] == aid
    theirs = dataclasses.replace(REG, agent_key="b" * 64, port=6666)
    for impostor in (theirs, keyless):
        with pytest.raises(AgentKeyMismatch) as refused:
            await store.register_agent(engine, impostor, "10.6.6.6", 3)
        assert refused.value.aid == aid and "web-1" in str(refused.value)
    info = (await store.load_agents(engine))[aid]
    assert (info.ip, info.port) == ("10.0.0.5", 9501)
    async with engine.begin() as conn:
        stored = (await conn.execute(select(agents.c.key_hash))).scalar()
        assert stored == hashlib.sha256(b"a" * 64).hexdigest()
        await conn.execute(update(agents).where(agents.c.id == aid).values(key_hash=""))
    assert (await store.register_agent(engine, theirs, "10.0.0.7", 4))[0] == aid
