"""A concurrency key holds through a leader kill: the new leader counts the runs the old one
sent from the store, so a limit of 2 over five rules on two agents is never exceeded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from center.store.db import create_engine
from center.tables import concurrency_key, task_process
from protocol import statuses
from tests.chaos.cluster import Cluster
from tests.chaos.monitor import Monitor
from tests.chaos.procs import now_us
from tests.integration.cluster import add_group, add_rule, approve_agent, poll, runs_of
from tests.integration.test_limits_params import most_at_once

pytestmark = [pytest.mark.slow, pytest.mark.mysql, pytest.mark.timeout(180)]
S = 1_000_000
BEFORE_S, AFTER_S = 8.0, 15.0  # observed before the kill, and after the new leader took over
RUN_S = 6


async def _rules(engine: AsyncEngine, cluster: Cluster) -> list[int]:
    gid = await add_group(engine)
    aids = [await approve_agent(engine, a.name, gid) for a in cluster.agents]
    async with engine.begin() as conn:
        await conn.execute(insert(concurrency_key).values(gid=gid, key="db-heavy", limit=2))
    # Runs longer than a takeover (lease TTL 3 s): the new leader finds them still running.
    common = {"gid": gid, "concurrency_keys": "db-heavy", "execute": f"/bin/sleep {RUN_S}"}
    task_ids = [await add_rule(engine, [aids[i % 2]], **common) for i in range(4)]
    task_ids.append(
        await add_rule(engine, aids[1:], **common, rule="*/10 * * * * *", overlap="queue")
    )
    return task_ids


async def _just_started(engine: AsyncEngine, task_ids: list[int]) -> bool:
    """A run started within the last second: its agent reports a start 0.5 s after it
    (`agent_start_report_delay_ms`), so the store shows it `running` no sooner."""
    running = task_process.c.status == statuses.RUNNING
    rows = [r for t in task_ids for r in await runs_of(engine, t, running)]
    return any(r["start"] > now_us() - S for r in rows)


async def _all_runs(engine: AsyncEngine, task_ids: list[int]) -> list[Any]:
    return [r for t in task_ids for r in await runs_of(engine, t)]


async def test_a_key_holds_through_a_leader_kill(mysql_url: str, tmp_path: Path) -> None:
    cluster = Cluster(mysql_url, tmp_path)
    await cluster.upgrade()
    engine = create_engine(mysql_url)
    monitor = Monitor(engine)
    try:
        await cluster.start()
        monitor.start()
        task_ids = await _rules(engine, cluster)
        done = task_process.c.status == statuses.SUCCESS
        first = await poll(lambda: runs_of(engine, task_ids[0], done), 30)
        start_us = first[0]["end"]
        await asyncio.sleep(BEFORE_S)  # runs under the first leader: time is the point here
        # Killed just after a run started: it outlives the takeover (lease TTL 3 s), so the
        # new leader must count it from the store, or it would admit two more beside it.
        await poll(lambda: _just_started(engine, task_ids), 20, every_s=0.02)
        lease = monitor.leader()
        assert lease is not None
        killed_us = await cluster.center(lease.holder).child.kill9()
        await monitor.wait(
            lambda: monitor.first_lease_after(killed_us, lease.holder) is not None, 15
        )
        took = monitor.first_lease_after(killed_us, lease.holder)
        assert took is not None
        await asyncio.sleep(AFTER_S)  # and under the new one
        end_us = now_us()
        await cluster.stop()
        stopped_us = now_us()
        rows = await _all_runs(engine, task_ids)
    finally:
        await monitor.stop()
        await cluster.kill_all()
        await engine.dispose()
    ran = [r for r in rows if r["start"] and start_us <= r["start"] < end_us]
    # Runs still going when the cluster stopped (agents first) have no end: they count as
    # running until then, which can only make an overlap more likely, never hide one.
    late = [r for r in ran if not r["end"]]
    assert all(r["start"] > end_us - (RUN_S + 1) * S for r in late), "the others ended"
    ran = [dict(r) | {"end": r["end"] or stopped_us} for r in ran]
    assert most_at_once(ran) <= 2, f"never more than the key's limit (logs in {tmp_path})"
    after = [r for r in ran if r["start"] > took.at_us]
    assert len(after) >= AFTER_S / RUN_S, "the new leader admits runs under the key"
    assert {r["epoch"] for r in ran if r["epoch"]} >= {lease.epoch, took.epoch}
