"""A sent run's `dispatched` status is written only if no report settles it first: a short
run's row goes from `planned` to its end; a run sent ahead, still `planned` in the store, is
killed at its agent and never starts (SQLite and MariaDB, a real center and agent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from center.service import CenterService
from center.store.db import is_mysql
from center.tables import task_process
from protocol import statuses
from tests.integration.cluster import (
    add_command,
    add_group,
    add_rule,
    approve_agent,
    at_rule,
    command_done,
    poll,
    running_agent,
    running_center,
    runs_of,
)
from tests.integration.test_limits_params import add_key

pytestmark = pytest.mark.timeout(90)


async def _record_status_moves(engine: AsyncEngine) -> None:
    """Every status a write gives a run row, in `trail` (a trigger: the center's own writes,
    whatever statement makes them)."""
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE trail (runid VARCHAR(64), status VARCHAR(16))"))
        if is_mysql(engine):
            await conn.execute(
                text(
                    "CREATE TRIGGER trail_moves AFTER UPDATE ON task_process FOR EACH ROW "
                    "INSERT INTO trail VALUES (NEW.runid, NEW.status)"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE TRIGGER trail_moves AFTER UPDATE ON task_process "
                    "BEGIN INSERT INTO trail VALUES (NEW.runid, NEW.status); END"
                )
            )


async def _trails(engine: AsyncEngine) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    async with engine.connect() as conn:
        for runid, status in await conn.execute(text("SELECT runid, status FROM trail")):
            out.setdefault(runid, []).append(status)
    return out


async def test_a_short_run_is_never_written_dispatched(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """`/bin/true` every second: its rows are written planned, then success, nothing between
    (before: planned, dispatched, success)."""
    await _record_status_moves(engine)
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(engine, [aid], execute="/bin/true")

        async def three_straight() -> list[str]:
            done = await runs_of(engine, task_id, task_process.c.status == statuses.SUCCESS)
            trails = await _trails(engine)
            straight = [r["runid"] for r in done if trails.get(r["runid"]) == [statuses.SUCCESS]]
            return straight if len(straight) >= 3 else []

        await poll(three_straight, 30)


async def _sent_unwritten(engine: AsyncEngine, center: CenterService, task_id: int) -> list[str]:
    """The rule's `planned` runs that the leader sent and has not written `dispatched`."""
    planned = await runs_of(engine, task_id, task_process.c.status == statuses.PLANNED)
    leader = center.leader
    return [r["runid"] for r in planned if leader is not None and r["runid"] in leader.ctx.marks]


async def _ended(engine: AsyncEngine, task_id: int) -> list[Any]:
    return await runs_of(engine, task_id, task_process.c.status.in_(statuses.FINAL))


async def test_a_kill_reaches_a_run_sent_ahead_before_its_status_is_written(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A run sent 2 s ahead waits at its agent while its row still says `planned`: a kill
    goes to the agent (not "killed before it was sent", which would leave the agent to run
    it), and the run ends killed without ever starting."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(engine, [aid], rule=at_rule(6), execute="/bin/sleep 60")

        [runid] = await poll(lambda: _sent_unwritten(engine, center, task_id), 20)
        command = await add_command(engine, "kill", runid=runid)
        done = await poll(lambda: command_done(engine, command), 10)
        assert done["status"] == "done" and done["result"].startswith("kill sent to agents")

        [row] = await poll(lambda: _ended(engine, task_id), 20)
    assert row["status"] == statuses.KILLED and "killed by user 1" in row["reason"]
    assert (row["pid"], row["start"]) == (0, 0), "it never started"


async def test_a_run_held_by_an_agent_that_restarts_is_sent_again_and_starts_on_time(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """An agent stopped while it holds a run sent ahead forgets it; when it is back, the
    leader counts the run, still `planned` in the store, as sent and sends it again at once,
    so it starts on its second, once (not when the sweep finds it seconds later)."""
    async with running_center(db_url, center_send_ahead_ms=6000) as center:
        async with running_agent(tmp_path, center.registration_port):
            aid = await approve_agent(engine, "agent-1")
            task_id = await add_rule(engine, [aid], rule=at_rule(9), execute="/bin/true")

            [runid] = await poll(lambda: _sent_unwritten(engine, center, task_id), 20)
        async with running_agent(tmp_path, center.registration_port):
            [row] = await poll(lambda: _ended(engine, task_id), 30)
    assert (row["runid"], row["status"]) == (runid, statuses.SUCCESS)
    assert 0 <= row["start"] - row["sched_us"] < 1_000_000, "started on its second"


async def test_a_limited_rules_run_is_written_dispatched_when_it_is_sent(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A run holding a concurrency key is written `dispatched` as it is sent, before its start
    is reported: a new leader counts the store's runs in flight before it admits any."""
    await _record_status_moves(engine)
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        gid = await add_group(engine)
        aid = await approve_agent(engine, "agent-1", gid)
        await add_key(engine, gid, "db", 1)

        async def key_known() -> bool:
            return center.leader is not None and (gid, "db") in center.leader.limits.keys

        await poll(key_known, 5)
        task_id = await add_rule(
            engine, [aid], gid=gid, concurrency_keys="db", rule=at_rule(2), execute="/bin/sleep 1"
        )

        [row] = await poll(lambda: _ended(engine, task_id), 20)
    trail = (await _trails(engine))[row["runid"]]
    assert (trail[0], trail[-1]) == (statuses.DISPATCHED, statuses.SUCCESS), trail
