"""The sweep resends runs that never started, but not runs whose start is still unread or
unwritten or that are held by their agent until a later time."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.agent_pool import AgentPool, LinkSettings, PoolListener
from center.dispatcher import DispatchQueue
from center.leader_context import LeaderContext
from center.recovery import SWEEP_SILENT_US, Recovery, sweep_ready
from center.rulebook import RuleBook
from center.runs import plan_run
from protocol import statuses
from protocol.clock import now_us

S = 1_000_000


async def _dispatched(engine: AsyncEngine, sched_us: list[int], sent_us: int) -> Any:
    lease = await store.acquire_lease(engine, "c1", sent_us, 60 * S)
    assert lease is not None
    runs = [plan_run(task_id, at, 1) for task_id, at in enumerate(sched_us, 1)]
    await store.insert_planned(engine, lease, runs, 0, sent_us)
    await store.set_run_status(engine, [r.runid for r in runs], statuses.DISPATCHED, sent_us)
    return lease, runs


async def test_runs_in_flight_leaves_out_runs_not_yet_due(engine: AsyncEngine):
    now = 1_000 * S
    _, runs = await _dispatched(engine, [now - 8 * S, now + 2 * S], now - 10 * S)
    before = now - SWEEP_SILENT_US
    flight = frozenset({statuses.DISPATCHED})
    rows = await store.runs_in_flight(engine, 1, updated_before_us=before, status=flight)
    assert {r.runid for r, _ in rows} == {runs[0].runid, runs[1].runid}
    rows = await store.runs_in_flight(
        engine, 1, updated_before_us=before, status=flight, due_before_us=before
    )
    assert [r.runid for r, _ in rows] == [runs[0].runid]


def _leader(engine: AsyncEngine, lease: Any) -> LeaderContext:
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
    pool.links = {1: SimpleNamespace(connected=True)}  # type: ignore[dict-item]
    return LeaderContext(
        engine=engine,
        lease=lease,
        rulebook=RuleBook(),
        agents=dict,
        pool=pool,
        queue=DispatchQueue(),
        wake=asyncio.Event(),
        grace_us=3600 * S,
        lost_after_us=3600 * S,
    )


async def test_sweep_waits_for_the_reports_received_before_it(engine: AsyncEngine):
    now = now_us()
    lease, runs = await _dispatched(engine, [now - 10 * S], now - 12 * S)  # would be resent
    leader = _leader(engine, lease)
    recovery = Recovery(leader)
    await recovery.sweep(reports_added=10, reports_written=4)
    recovery.note_pong(1, 12, now_us() // 1000 + 1)  # its answer to a ping sent since
    assert len(leader.queue) == 0  # reports still unwritten: maybe its start among them
    await recovery.sweep(reports_added=20, reports_written=11)
    assert len(leader.queue) == 0
    await recovery.sweep(reports_added=30, reports_written=12)  # those 12 are stored now
    assert len(leader.queue) == 1
    assert leader.queue.pop_due(2**62)[0].runid == runs[0].runid


async def test_sweep_waits_for_a_pong_to_a_ping_sent_since_it_began(engine: AsyncEngine):
    now = now_us()
    lease, _ = await _dispatched(engine, [now - 10 * S], now - 12 * S)  # would be resent
    leader = _leader(engine, lease)
    recovery = Recovery(leader)
    await recovery.sweep(reports_added=10, reports_written=10)
    recovery.note_pong(1, 10, now // 1000 - 1)  # to a ping sent before: its start may follow
    await recovery.sweep(reports_added=10, reports_written=10)
    assert len(leader.queue) == 0
    recovery.note_pong(1, 15, now_us() // 1000 + 1)
    await recovery.sweep(reports_added=15, reports_written=15)
    assert len(leader.queue) == 1


@pytest.mark.parametrize(
    ("needed", "heard", "connected", "written", "ready"),
    [
        (10, {}, [], 10, True),  # no agent connected: the reports received then are stored
        (10, {}, [], 9, False),
        (10, {}, [1], 10, False),  # agent 1 has not answered a ping sent since: maybe unread
        (10, {1: 12}, [1], 11, False),  # it has, after 12 reports: 2 of them still unwritten
        (10, {1: 12}, [1], 12, True),
        (10, {1: 12}, [1, 2], 12, False),  # agent 2 not yet
        (10, {1: 12, 2: 14}, [1, 2], 14, True),
        (10, {1: 12, 3: 20}, [1], 12, True),  # agent 3 went away: not waited for
    ],
)
def test_sweep_ready(
    needed: int, heard: dict[int, int], connected: list[int], written: int, ready: bool
):
    assert sweep_ready(needed, heard, connected, written) is ready


async def test_reconciliation_counts_sent_runs_whose_dispatched_is_not_written(
    engine: AsyncEngine,
):
    """A reconnected agent that no longer has a run sent before it connected gets it again,
    though its row still says `planned` (DispatchMarks); a run sent since it connected, or
    not sent at all, is left alone."""
    now = now_us()
    lease = await store.acquire_lease(engine, "c1", now - S, 60 * S)
    assert lease is not None
    before, since, _unsent = runs = [plan_run(task_id, now + 2 * S, 1) for task_id in (1, 2, 3)]
    await store.insert_planned(engine, lease, runs, 0, now - S)
    leader = _leader(engine, lease)
    leader.marks.add([(before.runid, before.sched_us)], now - S // 2)
    leader.marks.add([(since.runid, since.sched_us)], now + S // 2)
    async with asyncio.timeout(30):
        await Recovery(leader).reconcile([(1, frozenset(), now)])
    assert [r.runid for r in leader.queue.pop_due(2**62)] == [before.runid]
