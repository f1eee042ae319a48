"""The process model end to end: retries, timeouts, run now, kill, live output, env."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from center.tables import task_output, task_process
from protocol import statuses
from tests.integration.cluster import (
    add_command,
    add_rule,
    approve_agent,
    at_rule,
    command_done,
    poll,
    running_agent,
    running_center,
    runs_of,
)

pytestmark = pytest.mark.timeout(90)
FINAL = task_process.c.status.in_(statuses.FINAL)


async def _final_runs(engine: AsyncEngine, task_id: int, count: int) -> list:
    rows = await runs_of(engine, task_id, FINAL)
    return rows if len(rows) >= count else []


async def test_failed_run_is_retried_with_one_row_per_attempt(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A failing one-off rule with retries=2 leaves rows for attempts 0-2, linked to the first."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(
            engine, [aid], rule=at_rule(1.5), execute="/bin/false", retries=2, retry_backoff_s=0.3
        )
        rows = await poll(lambda: _final_runs(engine, task_id, 3), 20)
    assert [r["attempt"] for r in rows] == [0, 1, 2]
    assert [r["trigger"] for r in rows] == ["schedule", "retry", "retry"]
    assert {r["status"] for r in rows} == {statuses.FAILED} and {r["code"] for r in rows} == {1}
    assert {r["first_runid"] for r in rows} == {rows[0]["runid"]}
    assert len({r["sched_us"] for r in rows}) == 1, "every attempt belongs to the same fire"
    assert rows[1]["start"] - rows[0]["end"] >= 300_000, "the backoff was waited"


async def test_timeout_kills_the_whole_process_tree(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """`sleep 300 & sleep 300` with timeout_s=2 ends as timeout and leaves no process behind."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(
            engine,
            [aid],
            rule=at_rule(1),
            shell=1,
            timeout_s=2,
            kill_grace_s=1,
            execute="sleep 300 & sleep 300",
        )
        [row] = await poll(lambda: _final_runs(engine, task_id, 1), 20)
    assert row["status"] == statuses.TIMEOUT
    assert 1_900_000 <= row["end"] - row["start"] < 5_000_000
    # The run's own process group (its pid: a new session), not other tests' processes; a
    # killed child reparented to init may stay a zombie until init reaps it.
    assert row["pid"] > 0
    assert [p for p in psutil.process_iter(["status"]) if _alive_in(p, row["pid"])] == []


def _alive_in(proc: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE
    except ProcessLookupError:  # gone meanwhile
        return False


async def test_run_now_works_on_a_paused_rule_and_kill_stops_a_run(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """Run now starts a paused rule at once; kill stops the run; both commands are marked done."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(engine, [aid], status=0, execute="/bin/sleep 60")
        run_cmd = await add_command(engine, "run", task_id=task_id)
        done = await poll(lambda: command_done(engine, run_cmd), 10)
        assert done["status"] == "done" and "started 1 run" in done["result"]
        [running] = await poll(
            lambda: runs_of(engine, task_id, task_process.c.status == statuses.RUNNING), 10
        )
        assert running["trigger"] == "manual"
        kill_cmd = await add_command(engine, "kill", runid=running["runid"])
        assert (await poll(lambda: command_done(engine, kill_cmd), 10))["status"] == "done"
        [row] = await poll(lambda: _final_runs(engine, task_id, 1), 10)
        assert row["status"] == statuses.KILLED and "killed by user 1" in row["reason"]
        unknown = await add_command(engine, "kill", runid="no-such-run")
        assert (await poll(lambda: command_done(engine, unknown), 10))["status"] == "failed"


async def test_kill_rule_stops_every_run_of_it(db_url: str, engine: AsyncEngine, tmp_path: Path):
    """kill_rule stops all running runs of a rule."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(
            engine, [aid], status=0, execute="/bin/sleep 60", process_num=2, overlap="parallel"
        )
        for _ in range(2):
            await add_command(engine, "run", task_id=task_id)
            await poll(
                lambda: runs_of(engine, task_id, task_process.c.status == statuses.RUNNING), 10
            )
        await poll(lambda: _count(engine, task_id, statuses.RUNNING, 2), 10)
        cmd = await add_command(engine, "kill_rule", task_id=task_id)
        assert (await poll(lambda: command_done(engine, cmd), 10))["status"] == "done"
        rows = await poll(lambda: _final_runs(engine, task_id, 2), 10)
    assert {r["status"] for r in rows} == {statuses.KILLED}


async def _count(engine: AsyncEngine, task_id: int, status: str, n: int) -> bool:
    return len(await runs_of(engine, task_id, task_process.c.status == status)) >= n


async def test_output_is_streamed_while_the_run_goes_on(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """Output chunks land in task_output while the run is still running; env and ids reach it."""
    script = 'echo "$GREETING $UNITEDCRON_TASK_ID"; sleep 1; echo second; sleep 2; echo third'
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(
            engine, [aid], rule=at_rule(1), shell=1, execute=script, env='{"GREETING": "hello"}'
        )

        async def chunk_while_running() -> list:
            async with engine.connect() as conn:
                chunks = list((await conn.execute(select(task_output))).mappings())
            running = await runs_of(engine, task_id, task_process.c.status == statuses.RUNNING)
            return chunks if chunks and running else []

        chunks = await poll(chunk_while_running, 20)
        assert chunks[0]["offset"] == 0 and chunks[0]["data"].startswith(b"hello ")
        [row] = await poll(lambda: _final_runs(engine, task_id, 1), 20)
    assert row["result"] == f"hello {task_id}\nsecond\nthird\n"
    assert row["output_bytes"] == len(row["result"]) and not row["truncated"]
