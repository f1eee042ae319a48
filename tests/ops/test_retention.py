"""Retention: old finished runs and their output go, per group, in small batches."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center.retention import Retention, RetentionSettings
from center.rollup import RunFacts, Sums, hour_of
from center.store import rollups
from center.tables import cron_group, run_rollup, task_output, task_process
from tests.integration.cluster import add_group, add_rule, now_us, poll, running_center

DAY = 86_400 * 1_000_000
HOUR = 3_600 * 1_000_000


async def add_run(
    engine: AsyncEngine, task_id: int, age_us: int, status: str = "success", chunks: int = 2
) -> str:
    at = now_us() - age_us
    runid = f"{task_id}-{at}-1-0-0"
    async with engine.begin() as conn:
        await conn.execute(
            insert(task_process).values(
                task_id=task_id,
                runid=runid,
                aid=1,
                status=status,
                sched_us=at,
                start=at,
                end=at + 1000 if status != "running" else 0,
                created_us=at,
                updated_us=at + 1000,
            )
        )
        for i in range(chunks):
            await conn.execute(
                insert(task_output).values(runid=runid, offset=i * 3, data=b"abc", created_us=at)
            )
    return runid


async def runids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.scalars(select(task_process.c.runid))).all())


async def chunk_runids(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(task_output.c.runid))).all()
    out: dict[str, int] = {}
    for (runid,) in rows:
        out[runid] = out.get(runid, 0) + 1
    return out


async def set_retention(engine: AsyncEngine, gid: int, days: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(cron_group).where(cron_group.c.id == gid).values(retention_days=days)
        )


async def seed_runs(engine: AsyncEngine) -> dict[str, Any]:
    week, month = await add_group(engine, "week"), await add_group(engine, "month")
    await set_retention(engine, week, 7)
    r_week = await add_rule(engine, [], gid=week)
    r_month = await add_rule(engine, [], gid=month)
    r_none = await add_rule(engine, [], gid=None)
    return {
        "week_old": await add_run(engine, r_week, 8 * DAY, "failed"),
        "week_new": await add_run(engine, r_week, 6 * DAY),
        "week_running": await add_run(engine, r_week, 100 * DAY, "running"),
        "month_8d": await add_run(engine, r_month, 8 * DAY),
        "month_old": await add_run(engine, r_month, 40 * DAY, "timeout"),
        "none_old": await add_run(engine, r_none, 15 * DAY),
        "none_new": await add_run(engine, r_none, 5 * DAY),
        "removed_rule": await add_run(engine, 99_999, 12 * DAY),
        "done_2h": await add_run(engine, r_month, 2 * HOUR),
        "done_10m": await add_run(engine, r_month, HOUR // 6),
    }


async def test_runs_older_than_their_groups_retention_go(engine: AsyncEngine):
    """Each group keeps its retention_days; runs of rules without a group use the default."""
    runs = await seed_runs(engine)
    settings = RetentionSettings(batch=500, pause_s=0, default_days=10, output_keep_s=3600)
    done = await Retention(engine, settings).run_once(now_us())
    gone = {"week_old", "month_old", "none_old", "removed_rule"}
    assert await runids(engine) == {runids_ for k, runids_ in runs.items() if k not in gone}
    assert done.runs == 4
    chunks = await chunk_runids(engine)
    # Live output stays for runs still going and runs finished within the last hour only.
    assert set(chunks) == {runs["week_running"], runs["done_10m"]}


async def test_deletes_in_batches_of_the_configured_size(engine: AsyncEngine):
    """With a batch of 3 rows, 10 old runs take several short transactions and all go."""
    gid = await add_group(engine)
    task_id = await add_rule(engine, [], gid=gid)
    for i in range(10):
        await add_run(engine, task_id, 40 * DAY + i, chunks=1)
    settings = RetentionSettings(batch=3, pause_s=0.01, default_days=30, output_keep_s=3600)
    done = await Retention(engine, settings).run_once(now_us())
    assert (done.runs, done.chunks) == (10, 10)
    assert done.batches >= 4
    assert await runids(engine) == set()


async def test_the_leader_center_applies_retention(engine: AsyncEngine, db_url: str):
    """A running center (as leader) deletes expired runs on its own, without being asked."""
    runs = await seed_runs(engine)

    async def expired_gone() -> bool:
        left = await runids(engine)
        return runs["week_old"] not in left and runs["month_old"] not in left

    async with running_center(db_url, center_retention_every_s=0.2):
        await poll(expired_gone, 20)
    assert runs["week_new"] in await runids(engine)


async def test_rollups_outlive_the_runs_until_their_own_keep(engine: AsyncEngine):
    """Old runs go without their rollups; rollups older than rollup_keep_days go on their own."""
    gid = await add_group(engine)
    await set_retention(engine, gid, 7)
    task_id = await add_rule(engine, [], gid=gid)
    now = now_us()
    one = Sums()
    one.add(RunFacts("x", task_id, now, "success", now, now + 5_000), +1)
    hours = {hour_of(now - 40 * DAY), hour_of(now - 500 * DAY)}
    async with engine.begin() as conn:
        await rollups.write_sums(conn, {(task_id, h): one for h in hours}, now)
    await add_run(engine, task_id, 40 * DAY)
    settings = RetentionSettings(pause_s=0, default_days=30, rollup_keep_days=400)
    done = await Retention(engine, settings).run_once(now)
    assert (done.runs, done.rollups) == (1, 1)
    async with engine.connect() as conn:
        kept = set((await conn.scalars(select(run_rollup.c.hour_us))).all())
    assert kept == {hour_of(now - 40 * DAY)}
