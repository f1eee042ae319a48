"""Failover on MariaDB: leader takeover and agent-offline detection after kill -9."""

# Run as root: `.venv/bin/python bench/bench_failover.py [REPS]` (REPS defaults to 5), with
# MariaDB on 127.0.0.1:3306 (`UNITEDCRON_TEST_MYSQL` names another server). It creates, and
# drops at the end, the database `uc_bench_failover`. Two `unitedcron center` and two
# `python -m agent` processes run with the centers' default timings (lease TTL 3 s, renewed
# every 1 s, offline after 2 s, pings and agent polls every 1 s), one rule firing every second
# on both agents. Figures, per repetition and as min / median / max:
#
# * takeover: kill -9 of the leader → another center holds the lease (sampled every 50 ms),
#   and → the first run started after that (the new leader's first exec reached an agent);
# * offline: kill -9 of an agent → its `agents.status` is 2 (unreachable).
#
# Prints figures, asserts nothing.

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pymysql
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from center.store.db import create_engine
from center.tables import task_process
from protocol import statuses
from tests.chaos.cluster import Cluster
from tests.chaos.faults import wait_healthy
from tests.chaos.monitor import Monitor
from tests.integration.cluster import add_rule, approve_agent, poll

DATABASE = "uc_bench_failover"
SERVER = os.environ.get("UNITEDCRON_TEST_MYSQL", "mysql+aiomysql://root@127.0.0.1:3306")
REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
WAIT_S = 30.0
DEFAULT_TIMINGS: dict[str, str] = {}  # the centers' own defaults, as operators run them


def _server(sql: str) -> None:
    url = make_url(SERVER)
    conn = pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        autocommit=True,
    )
    with conn, conn.cursor() as cur:
        cur.execute(sql)


async def _first_start_after(engine: AsyncEngine, after_us: int) -> int | None:
    """The earliest process start recorded after `after_us`, if any yet."""
    query = select(func.min(task_process.c.start)).where(task_process.c.start >= after_us)
    async with engine.connect() as conn:
        found = (await conn.execute(query)).scalar_one()
    return int(found) if found else None


async def _takeover(cluster: Cluster, monitor: Monitor, engine: AsyncEngine) -> tuple[float, float]:
    """Kill the leader; seconds until another center holds the lease, and until a run started."""
    lease = monitor.leader()
    assert lease is not None
    center = cluster.center(lease.holder)
    killed_us = await center.child.kill9()
    await monitor.wait(
        lambda: monitor.first_lease_after(killed_us, center.name) is not None, WAIT_S
    )
    taken = monitor.first_lease_after(killed_us, center.name)
    assert taken is not None
    started_us = await poll(lambda: _first_start_after(engine, taken.at_us), WAIT_S)
    await cluster.start_center(center)
    return (taken.at_us - killed_us) / 1e6, (started_us - killed_us) / 1e6


async def _offline(cluster: Cluster, monitor: Monitor, rep: int) -> float:
    """Kill an agent; seconds until its status is 2. Then it is started again."""
    agent = cluster.agents[rep % len(cluster.agents)]
    killed_us = await agent.child.kill9()
    await monitor.wait(
        lambda: monitor.first_status_after(agent.name, killed_us, 2) is not None, WAIT_S
    )
    seen_us = monitor.first_status_after(agent.name, killed_us, 2)
    assert seen_us is not None
    await cluster.start_agent(agent)
    return (seen_us - killed_us) / 1e6


async def _prepare(cluster: Cluster, engine: AsyncEngine) -> None:
    """Both agents approved, one rule every second on both, and a first success."""
    aids = [await approve_agent(engine, a.name) for a in cluster.agents]
    task_id = await add_rule(engine, aids, execute="/bin/true", run_user="nobody")

    async def succeeded() -> bool:
        query = select(func.count()).where(
            task_process.c.task_id == task_id, task_process.c.status == statuses.SUCCESS
        )
        async with engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one()) > 0

    await poll(succeeded, WAIT_S)


def _line(name: str, values: list[float]) -> str:
    each = " ".join(f"{v:5.2f}" for v in values)
    return (
        f"{name:<34} min {min(values):5.2f}  median {statistics.median(values):5.2f}"
        f"  max {max(values):5.2f} s   [{each}]"
    )


async def _measure(cluster: Cluster, engine: AsyncEngine) -> list[str]:
    monitor = Monitor(engine, every_s=0.05)
    monitor.start()
    try:
        await _prepare(cluster, engine)
        lease_s, first_run_s, offline_s = [], [], []
        for _ in range(REPS):
            await wait_healthy(cluster, monitor)
            took, ran = await _takeover(cluster, monitor, engine)
            lease_s.append(took)
            first_run_s.append(ran)
        for rep in range(REPS):
            await wait_healthy(cluster, monitor)
            offline_s.append(await _offline(cluster, monitor, rep))
    finally:
        await monitor.stop()
    return [
        _line("takeover: standby holds the lease", lease_s),
        _line("takeover: first run started", first_run_s),
        _line("agent offline (status 2)", offline_s),
    ]


async def main() -> None:
    _server(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    _server(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    workdir = Path(tempfile.mkdtemp(prefix="uc-bench-failover-"))
    db_url = make_url(SERVER).set(database=DATABASE).render_as_string(hide_password=False)
    cluster = Cluster(db_url, workdir, settings=DEFAULT_TIMINGS)
    engine = create_engine(db_url)
    try:
        await cluster.upgrade()
        await cluster.start()
        lines = await _measure(cluster, engine)
        await cluster.stop()
    except BaseException:
        print(f"failed; process logs kept in {workdir / 'logs'}", file=sys.stderr)
        raise
    finally:
        await cluster.kill_all()
        await engine.dispose()
        _server(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"failover on MariaDB, 2 centers, 2 agents, {REPS} repetitions, default timings")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
