"""Runs on an agent that never comes back become lost after the bound, once, fenced by the
leader's epoch, and are retried on another agent or on the same one when it is back."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.agent_pool import AgentPool, LinkSettings, PoolListener
from center.dispatcher import DispatchQueue
from center.errors import NotLeader
from center.leader_context import LeaderContext
from center.recovery import Recovery
from center.rulebook import RuleBook
from center.rules import Rule
from center.runs import plan_run
from protocol import statuses
from protocol.clock import now_us
from tests.integration.cluster import (
    add_group,
    add_rule,
    approve_agent,
    at_rule,
    poll,
    running_center,
    runs_of,
)
from tests.security.peers import FakeAgent

S = 1_000_000
RULE = Rule(
    id=7,
    rule="* * * * *",
    execute="/bin/true",
    run_user="nobody",
    retries=1,
    retry_unknown="retry",
)


async def _in_flight(engine: AsyncEngine, lease: Any, status: str, at_us: int) -> list[str]:
    runs = [plan_run(7, at_us - S, aid) for aid in (1, 2)]
    await store.insert_planned(engine, lease, runs, 0, at_us)
    await store.set_run_status(engine, [r.runid for r in runs], status, at_us)
    return [r.runid for r in runs]


def _context(engine: AsyncEngine, lease: Any, connected: set[int]) -> LeaderContext:
    pool = AgentPool(
        LinkSettings(
            secrets=(b"s",),
            center_name="c1",
            ping_interval_s=1,
            offline_after_s=2,
            reconnect_max_s=1,
            max_frame_bytes=1024,
        ),
        PoolListener(),
    )
    pool.links = {aid: SimpleNamespace(connected=True) for aid in connected}  # type: ignore[misc]
    rulebook = RuleBook()
    rulebook.update([RULE], complete=True)
    return LeaderContext(
        engine=engine,
        lease=lease,
        rulebook=rulebook,
        agents=dict,
        pool=pool,
        queue=DispatchQueue(),
        wake=asyncio.Event(),
        grace_us=10 * S,
        lost_after_us=60 * S,
    )


async def _statuses(engine: AsyncEngine) -> dict[str, str]:
    return {r["runid"]: r["status"] for r in await runs_of(engine, 7)}


async def test_silent_agents_runs_are_lost_once_with_one_retry_and_one_log_line(
    engine: AsyncEngine,
):
    """A run of a disconnected agent silent past the bound is lost with its retry; a connected
    agent's run is left alone; a second sweep changes nothing and logs nothing."""
    then = now_us() - 120 * S
    lease = await store.acquire_lease(engine, "c1", then, 3600 * S)
    assert lease is not None
    gone, up = await _in_flight(engine, lease, statuses.RUNNING, then)
    ctx = _context(engine, lease, connected={2})
    with structlog.testing.capture_logs() as logs:
        await Recovery(ctx).lose_silent()
        await Recovery(ctx).lose_silent()
    lost = [e for e in logs if e["event"] == "run.lost"]
    assert [(e["runid"], e["task_id"], e["agent"]) for e in lost] == [(gone, 7, "1")]
    assert lost[0]["reason"] == "agent 1 silent for 60 s"
    found = await _statuses(engine)
    retry = lost[0]["retry_runid"]
    assert found == {gone: statuses.LOST, up: statuses.RUNNING, retry: statuses.PLANNED}
    assert [r.runid for r in ctx.queue.pop_due(2**62)] == [retry]


async def test_a_deposed_leader_makes_nothing_lost(engine: AsyncEngine):
    """The write is fenced: once another center holds a newer epoch, NotLeader, no change."""
    then = now_us() - 120 * S
    lease = await store.acquire_lease(engine, "c1", then, S)
    assert lease is not None
    await _in_flight(engine, lease, statuses.DISPATCHED, then)
    assert await store.acquire_lease(engine, "c2", now_us(), 60 * S) is not None
    with pytest.raises(NotLeader):
        await Recovery(_context(engine, lease, connected=set())).lose_silent()
    assert set((await _statuses(engine)).values()) == {statuses.DISPATCHED}


async def test_a_run_that_reported_meanwhile_is_not_made_lost(engine: AsyncEngine):
    """Only runs still in flight change: a result written between the read and the write
    wins, and no retry is written for it."""
    then = now_us() - 120 * S
    lease = await store.acquire_lease(engine, "c1", then, 3600 * S)
    assert lease is not None
    first, second = await _in_flight(engine, lease, statuses.RUNNING, then)
    await store.set_run_status(engine, [first], statuses.SUCCESS, now_us())
    retry = plan_run(7, then - S, 1, attempt=1)
    made = await store.record_lost(
        engine, lease, [(first, "x", retry), (second, "y", None)], now_us()
    )
    assert made == [second]
    assert await _statuses(engine) == {first: statuses.SUCCESS, second: statuses.LOST}


# ------------------------------------------------------------ a real center, fake agents


async def _execs(agent: FakeAgent, attempt: int) -> list[Any]:
    return [e for e in agent.execs if e.ref.attempt == attempt]


async def _any_execs(fakes: list[FakeAgent]) -> bool:
    return any(f.execs for f in fakes)


async def _run_status(engine: AsyncEngine, task_id: int, attempt: int) -> Any:
    rows = [r for r in await runs_of(engine, task_id) if r["attempt"] == attempt]
    return rows[0] if rows and rows[0]["status"] == statuses.LOST else None


async def _agents(
    engine: AsyncEngine, port: int, gid: int, fakes: dict[FakeAgent, int]
) -> list[int]:
    """Register and approve fake agents listening at their ports; wait for their links."""
    aids = []
    for fake in fakes:
        await fake.register(port)  # enrols: the certificate comes when the center dials
        aids.append(await approve_agent(engine, fake.name, gid))
    async with asyncio.timeout(10):
        for fake in fakes:
            await fake.connected.wait()
    return aids


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_a_run_on_an_agent_that_dies_is_lost_then_retried_when_it_is_back(
    db_url: str, engine: AsyncEngine
):
    """With a 1 s bound: the agent holding a dispatched run vanishes; the run becomes lost
    naming the agent and the bound; its retry waits for the agent and is sent when it is back."""
    gid = await add_group(engine)
    web3 = FakeAgent("web-3")
    overrides = {"center_lost_after_s": 1.0, "center_dispatch_grace_s": 60.0}
    async with running_center(db_url, **overrides) as center, web3 as port:
        (aid,) = await _agents(engine, center.registration_port, gid, {web3: port})
        retry = {"retries": 1, "retry_backoff_s": 0, "retry_unknown": "retry"}
        task_id = await add_rule(engine, [aid], gid=gid, rule=at_rule(3), **retry)
        await poll(lambda: _execs(web3, 0), 15)
        await web3.vanish()
        lost = await poll(lambda: _run_status(engine, task_id, 0), 15)
        assert lost["reason"] == "agent web-3 silent for 1 s"
        await web3.listen(port)
        (again,) = await poll(lambda: _execs(web3, 1), 15)
        assert again.ref.first_runid == lost["runid"]


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_a_lost_run_is_retried_on_another_agent_when_its_rule_fails_over(
    db_url: str, engine: AsyncEngine
):
    """A round-robin rule: the agent of the first attempt vanishes for good; the retry of the
    lost run goes to the other agent of the group."""
    gid = await add_group(engine)
    fakes = [FakeAgent("web-3"), FakeAgent("web-4")]
    async with (
        running_center(db_url, center_lost_after_s=1.0) as center,
        fakes[0] as port3,
        fakes[1] as port4,
    ):
        await _agents(engine, center.registration_port, gid, {fakes[0]: port3, fakes[1]: port4})
        retry = {"retries": 1, "retry_backoff_s": 0, "retry_unknown": "retry"}
        task_id = await add_rule(
            engine, [], gid=gid, rule=at_rule(3), routing="round_robin", **retry
        )
        await poll(lambda: _any_execs(fakes), 15)
        first, other = fakes if fakes[0].execs else fakes[::-1]
        await first.vanish()
        await poll(lambda: _run_status(engine, task_id, 0), 15)
        (again,) = await poll(lambda: _execs(other, 1), 15)
        assert again.ref.task_id == task_id
