"""A compromised agent of group B reports runs of group A: refused, audited, nothing changed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from center.store.db import upgrade_database
from center.tables import audit_log, task_output, task_process
from protocol import statuses
from protocol.messages import (
    Message,
    RunFinished,
    RunOutput,
    RunRef,
    RunStarted,
    make_runid,
)
from tests.integration.cluster import (
    add_group,
    add_rule,
    approve_agent,
    now_us,
    poll,
    running_agent,
    running_center,
    runs_of,
)
from tests.security.peers import FakeAgent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
async def db_url(sqlite_url: str) -> str:
    """SQLite only: an attack on the protocol's trust, not on the store."""
    async with asyncio.timeout(60):
        await upgrade_database(sqlite_url)
    return sqlite_url


def _forged(ref: RunRef, seq: int) -> list[Message]:
    """A start and a failure as root for `ref`, the way a rogue agent would send them."""
    return [
        RunStarted(seq=seq, ref=ref, pid=1, start_us=ref.sched_us, run_user="root"),
        RunFinished(
            seq=seq + 1,
            ref=ref,
            status=statuses.FAILED,
            start_us=ref.sched_us,
            end_us=ref.sched_us + 1,
            code=1,
            run_user="root",
        ),
    ]


async def test_an_agent_cannot_report_another_groups_runs(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """Agent B sends failures for A's running run (A's id) and for a run it made up under its
    own id: both are refused and audited; A's run goes on, no retry is planned on B and no row
    as root appears."""
    gid_a, gid_b = await add_group(engine, "a"), await add_group(engine, "b")
    rogue = FakeAgent("rogue-b")
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port, name="agent-a"),
        rogue,
    ):
        aid_a = await approve_agent(engine, "agent-a", gid_a)
        task_id = await add_rule(engine, [aid_a], gid=gid_a, execute="/bin/sleep 4", retries=2)
        running = task_process.c.status == statuses.RUNNING
        victim = (await poll(lambda: runs_of(engine, task_id, running), 15))[0]
        await rogue.register(center.registration_port)
        aid_b = await approve_agent(engine, rogue.name, gid_b)
        ref_a = RunRef(runid=victim.runid, task_id=task_id, sched_us=victim.sched_us)
        own = RunRef(
            runid=make_runid(task_id, victim.sched_us, aid_b),
            task_id=task_id,
            sched_us=victim.sched_us,
        )
        await rogue.reports.put(_forged(ref_a, 1) + _forged(own, 3))
        events = await poll(lambda: _audit(engine, "report.refused"), 15)
        assert events[0]["client"] == rogue.name
        done = await poll(lambda: _row(engine, victim.runid, statuses.FINAL), 15)
    assert done["status"] == statuses.SUCCESS and done["aid"] == aid_a
    assert done["run_user"] == "nobody"
    assert await runs_of(engine, task_id, task_process.c.aid == aid_b) == []
    assert await runs_of(engine, task_id, task_process.c.run_user == "root") == []
    assert await runs_of(engine, task_id, task_process.c.attempt > 0) == []


async def _audit(engine: AsyncEngine, action: str) -> list:
    async with engine.connect() as conn:
        query = select(audit_log).where(audit_log.c.action == action)
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def _row(engine: AsyncEngine, runid: str, among: frozenset[str]) -> dict | None:
    async with engine.connect() as conn:
        query = select(task_process).where(
            task_process.c.runid == runid, task_process.c.status.in_(sorted(among))
        )
        row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None


async def test_an_output_flood_is_bounded(db_url: str, engine: AsyncEngine, tmp_path: Path) -> None:
    """An agent streams 1 MiB output frames for a run of its own as fast as it can: the center
    stores at most the rule's bound, its memory stays flat, and another agent's rule runs on."""
    gid = await add_group(engine, "ops")
    rogue = FakeAgent("flooder")
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port, name="honest"),
        rogue,
    ):
        honest = await approve_agent(engine, "honest", gid)
        good = await add_rule(engine, [honest], gid=gid)
        await rogue.register(center.registration_port)
        aid = await approve_agent(engine, rogue.name, gid)
        bound = 64 * 1024
        flooded = await add_rule(engine, [aid], gid=gid, output_max_bytes=bound)
        runid = make_runid(flooded, now_us(), aid)
        before_mb = _rss_mb()
        chunk = b"y" * ((1 << 20) - 4096)  # the largest that fits a frame
        await rogue.reports.put(
            [RunOutput(runid=runid, offset=i * len(chunk), data=chunk) for i in range(300)]
        )
        since = now_us()
        succeeded = task_process.c.status == statuses.SUCCESS
        await poll(lambda: runs_of(engine, good, succeeded, task_process.c.sched_us > since), 15)
        dropped = center.metrics.output_dropped._value
        await poll(lambda: _true(dropped.get() >= 299 * len(chunk)), 20)
        grew_mb = _rss_mb() - before_mb
    assert await _stored_output(engine, runid) <= bound
    assert grew_mb < 200, f"center grew {grew_mb:.0f} MB under a 300 MB flood"


async def _true(value: bool) -> bool:
    return value


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


async def _stored_output(engine: AsyncEngine, runid: str) -> int:
    async with engine.connect() as conn:
        query = select(func.coalesce(func.sum(func.length(task_output.c.data)), 0)).where(
            task_output.c.runid == runid
        )
        return int((await conn.execute(query)).scalar_one())
