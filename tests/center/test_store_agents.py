"""Registration keeps operators' decisions: approvals, disables and labels survive it."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.tables import agents
from protocol.messages import Register

REG = Register(name="web-1", host="10.0.0.5", port=9501, labels={"zone": "a", "role": "web"},
               users=["nobody"], allow_root=False)


async def test_reregistering_keeps_status_and_merges_labels(engine: AsyncEngine):
    """An approved or disabled agent stays so when it registers again; operator labels win."""
    aid, status = await store.register_agent(engine, REG, "10.0.0.5", 1)
    assert status == 0
    async with engine.begin() as conn:
        await conn.execute(update(agents).where(agents.c.id == aid)
                           .values(status=1, labels='{"role": "db", "team": "x"}'))
    assert await store.register_agent(engine, REG, "10.0.0.6", 2) == (aid, 1)
    info = (await store.load_agents(engine))[aid]
    assert info.ip == "10.0.0.6" and info.allowed_users == ("nobody",) and not info.allow_root
    assert dict(info.labels) == {"zone": "a", "role": "db", "team": "x"}
    async with engine.begin() as conn:
        await conn.execute(update(agents).where(agents.c.id == aid).values(status=-1))
    assert await store.register_agent(engine, REG, "10.0.0.6", 3) == (aid, 0), "deleted: pending"
