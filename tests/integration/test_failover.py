"""Nothing lost, nothing twice: fencing, takeover, misfires, failover, shards, dependents."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.errors import NotLeader
from center.runs import plan_run
from center.tables import agents, leader_lease, task_process
from protocol import statuses
from tests.integration.cluster import (
    SECRET,
    add_group,
    add_rule,
    approve_agent,
    at_rule,
    now_us,
    poll,
    running_agent,
    running_center,
    runs_of,
)

pytestmark = pytest.mark.timeout(120)
S = 1_000_000
DONE = task_process.c.status.in_(statuses.FINAL)


async def test_a_deposed_leader_writes_nothing(engine: AsyncEngine):
    """Once another center holds a newer epoch, the old one's planning and renewals are refused."""
    now = now_us()
    old = await store.acquire_lease(engine, "old", now, 3 * S)
    assert old is not None and await store.acquire_lease(engine, "new", now, 3 * S) is None
    new = await store.acquire_lease(engine, "new", now + 4 * S, 3 * S)
    assert new is not None and new.epoch == old.epoch + 1
    with pytest.raises(NotLeader):
        await store.insert_planned(engine, old, [plan_run(1, now, 1)], now + S, now)
    assert not await store.renew_lease(engine, old, now + 4 * S, 3 * S)
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(task_process))).scalar() == 0
        lease = (await conn.execute(select(leader_lease))).mappings().one()
    assert (lease["holder"], lease["epoch"]) == ("new", new.epoch)


async def test_standby_takes_over_and_every_fire_is_accounted_for(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """When the leader stops, the standby leads within seconds; each fire is run once or missed."""
    async with (
        running_center(db_url, center_name="c1") as c1,
        running_center(db_url, center_name="c2") as c2,
        running_agent(
            tmp_path,
            c1.registration_port,
            agent_center=f"127.0.0.1:{c1.registration_port},127.0.0.1:{c2.registration_port}",
        ),
    ):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(engine, [aid])
        first = await poll(lambda: runs_of(engine, task_id, DONE), 10)
        leader, standby = (c1, c2) if c1.is_leader else (c2, c1)
        await leader.stop()
        stopped_us = now_us()
        await poll(lambda: _true(standby.is_leader), 10)
        took_over_us = now_us()
        await poll(
            lambda: runs_of(engine, task_id, DONE, task_process.c.sched_us > took_over_us + S),
            15,
        )
    everything = await runs_of(engine, task_id)
    scheds = [r["sched_us"] for r in everything]
    assert len(scheds) == len(set(scheds)), "no fire recorded twice"
    # Up to the last fire that ended: later ones were planned or sent ahead when it stopped.
    end = max(r["sched_us"] for r in everything if r["status"] == statuses.SUCCESS)
    rows = [r for r in everything if r["sched_us"] <= end]
    start = first[0]["sched_us"]
    assert set(range(start, end + 1, S)) <= set(scheds), "every fire has a row"
    assert {r["status"] for r in rows} <= {statuses.SUCCESS, statuses.MISSED}
    assert took_over_us - stopped_us < 5 * S


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize(
    ("policy", "expect"),
    [("skip", "missed"), ("once", "one"), ("all", "all")],
)
async def test_misfire_policy_after_a_gap_with_no_leader(
    db_url: str, engine: AsyncEngine, tmp_path: Path, policy: str, expect: str
):
    """Fires while no center led are recorded missed (skip), run once, or all run (all)."""
    # A short lookahead: fires the old leader had planned ahead would run late, not misfire.
    short = {"center_lookahead_ms": 300, "center_send_ahead_ms": 100}
    async with (
        running_center(db_url, **short) as center,
        running_agent(tmp_path, center.registration_port),
    ):
        aid = await approve_agent(engine, "agent-1")
        # Catch-up runs obey the overlap policy like any run: let them overlap here.
        task_id = await add_rule(engine, [aid], misfire=policy, overlap="parallel", process_num=10)
        await poll(lambda: runs_of(engine, task_id, DONE), 10)
    await asyncio.sleep(3)  # the gap itself: no center runs, nothing to await
    restarted_us = now_us()
    async with (
        running_center(db_url, **short) as center,
        running_agent(tmp_path, center.registration_port),
    ):
        await poll(
            lambda: runs_of(
                engine,
                task_id,
                DONE,
                task_process.c.trigger == "schedule",
                task_process.c.sched_us > restarted_us + S,
            ),
            15,
        )
    missed = await runs_of(engine, task_id, task_process.c.status == statuses.MISSED)
    caught = await runs_of(engine, task_id, task_process.c.trigger == "misfire")
    if expect == "missed":
        assert len(missed) >= 2 and not caught
        assert all("misfire policy skip" in r["reason"] for r in missed)
    elif expect == "one":
        assert len(caught) == 1 and caught[0]["status"] == statuses.SUCCESS and len(missed) >= 1
        assert caught[0]["sched_us"] > max(r["sched_us"] for r in missed)
    else:
        assert len(caught) >= 2 and not missed
        assert {r["status"] for r in caught} == {statuses.SUCCESS}
    scheds = [r["sched_us"] for r in await runs_of(engine, task_id)]
    assert len(scheds) == len(set(scheds))


async def test_failover_to_the_next_agent_and_offline_detection(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A least-loaded rule moves to the other agent when its agent goes; offline within ~3 s."""
    async with running_center(db_url) as center:
        port = center.registration_port
        async with (
            running_agent(tmp_path, port, "agent-1"),
            running_agent(tmp_path, port, "agent-2") as a2,
        ):
            gid = await add_group(engine)
            a1_id = await approve_agent(engine, "agent-1", gid)
            a2_id = await approve_agent(engine, "agent-2", gid)
            async with engine.begin() as conn:  # make agent-2 the least loaded
                await conn.execute(update(agents).where(agents.c.id == a1_id).values(cpu_pct=90))
            task_id = await add_rule(engine, [], gid=gid, routing="least_loaded")
            await poll(lambda: runs_of(engine, task_id, DONE), 10)
            await a2.stop()
            stopped_us = now_us()
            offline = await poll(lambda: _offline_at(engine, a2_id), 10)
            await poll(
                lambda: runs_of(
                    engine,
                    task_id,
                    DONE,
                    task_process.c.aid == a1_id,
                    task_process.c.sched_us > offline,
                ),
                10,
            )
    assert offline - stopped_us < 4 * S, "agent-2 marked unreachable within ~3 s"
    rows = await runs_of(engine, task_id)
    scheds = [r["sched_us"] for r in rows]
    assert len(scheds) == len(set(scheds)), "one run per fire: never both agents"


async def _offline_at(engine: AsyncEngine, aid: int) -> int | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(agents).where(agents.c.id == aid))).mappings().one()
    return now_us() if row["status"] == 2 else None


async def test_shards_spread_over_agents_with_their_index(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """shard_total=2 runs two shards per fire on two agents, each told its index and the total."""
    async with running_center(db_url) as center:
        port = center.registration_port
        async with (
            running_agent(tmp_path, port, "agent-1"),
            running_agent(tmp_path, port, "agent-2"),
        ):
            gid = await add_group(engine)
            ids = {await approve_agent(engine, n, gid) for n in ("agent-1", "agent-2")}
            task_id = await add_rule(
                engine,
                [],
                gid=gid,
                routing="round_robin",
                shard_total=2,
                rule=at_rule(1.5),
                shell=1,
                execute='echo "$UNITEDCRON_SHARD_INDEX/$UNITEDCRON_SHARD_TOTAL"',
            )
            rows = await poll(lambda: _at_least(runs_of(engine, task_id, DONE), 2), 15)
    assert sorted((r["instance"], r["result"]) for r in rows) == [(0, "0/2\n"), (1, "1/2\n")]
    assert {r["aid"] for r in rows} == ids


async def _at_least(rows_awaitable, n: int) -> list:
    rows = await rows_awaitable
    return rows if len(rows) >= n else []


async def test_dependent_rule_runs_after_its_parent_succeeds(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A rule with depends_on runs once its parent succeeded, with the parent's run id."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        parent = await add_rule(engine, [aid], rule=at_rule(1.5), execute="/bin/true")
        on_fail = await add_rule(engine, [aid], rule="", depends_on=parent, depends_when="failure")
        child = await add_rule(
            engine,
            [aid],
            rule="",
            depends_on=parent,
            shell=1,
            execute='echo "after $UNITEDCRON_PARENT_RUNID"',
        )
        [done] = await poll(lambda: runs_of(engine, child, DONE), 15)
        [parent_run] = await runs_of(engine, parent)
    assert done["trigger"] == "dependency" and done["parent_runid"] == parent_run["runid"]
    assert done["result"] == f"after {parent_run['runid']}\n"
    assert await runs_of(engine, on_fail) == []


async def test_a_result_finished_while_the_center_was_down_arrives_later(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A run that ends while no center listens is kept by the agent, across restarts, and lands."""
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port) as agent,
    ):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(engine, [aid], rule=at_rule(1), execute="/bin/sleep 3")
        await poll(lambda: runs_of(engine, task_id, task_process.c.status == statuses.RUNNING), 10)
        await center.stop()
        await poll(lambda: _true(agent.outbox.count > 0 and not agent.control.runs), 10)
    assert (await runs_of(engine, task_id))[0]["status"] == statuses.RUNNING
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        [row] = await poll(lambda: runs_of(engine, task_id, DONE), 15)
    assert row["status"] == statuses.SUCCESS and row["code"] == 0


async def test_a_run_lost_with_its_agent_is_marked_lost_and_retried(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """kill -9 of an agent during a run: after it restarts the run is `lost` with its outcome
    unknown, and retried because the rule asks for at least once (`retry_unknown = retry`)."""
    async with running_center(db_url) as center:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNITEDCRON_")} | {
            "UNITEDCRON_SECRET": SECRET,
            "UNITEDCRON_AGENT_LISTEN": "127.0.0.1:0",
            "UNITEDCRON_AGENT_CENTER": f"127.0.0.1:{center.registration_port}",
            "UNITEDCRON_AGENT_NAME": "agent-9",
            "UNITEDCRON_LOG_FORMAT": "json",
            "UNITEDCRON_AGENT_STATE_DIR": str(tmp_path / "state"),
            "UNITEDCRON_AGENT_REGISTER_INTERVAL_S": "1",
        }
        agent = await asyncio.create_subprocess_exec(sys.executable, "-m", "agent", env=env)
        try:
            aid = await approve_agent(engine, "agent-9")
            task_id = await add_rule(
                engine,
                [aid],
                rule=at_rule(1),
                retries=1,
                retry_unknown="retry",
                retry_backoff_s=0.2,
                shell=1,
                execute="if [ $UNITEDCRON_ATTEMPT = 0 ]; then sleep 60; fi",
            )
            await poll(
                lambda: runs_of(engine, task_id, task_process.c.status == statuses.RUNNING), 10
            )
            agent.send_signal(signal.SIGKILL)
            await agent.wait()
            agent = await asyncio.create_subprocess_exec(sys.executable, "-m", "agent", env=env)
            rows = await poll(lambda: _at_least(runs_of(engine, task_id, DONE), 2), 30)
        finally:
            if agent.returncode is None:
                agent.send_signal(signal.SIGTERM)
                async with asyncio.timeout(20):
                    await agent.wait()
    assert [(r["attempt"], r["status"]) for r in rows] == [(0, "lost"), (1, "success")]
    # The restarted agent stops its orphan and says what it found.
    assert rows[0]["reason"].startswith("outcome unknown") and "pid" in rows[0]["reason"]
