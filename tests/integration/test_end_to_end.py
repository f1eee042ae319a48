"""The whole path on real parts: a rule row runs on an agent as its user; its result lands."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from center.tables import task_process
from protocol import statuses
from tests.integration.cluster import (
    add_group,
    add_rule,
    agent_row,
    approve_agent,
    edit_rule,
    now_us,
    poll,
    rule_row,
    running_agent,
    running_center,
    runs_of,
)

pytestmark = pytest.mark.timeout(90)


async def test_every_second_rule_runs_as_nobody(db_url: str, engine: AsyncEngine, tmp_path: Path):
    """An every-second `id -un` rule for nobody lands code 0, output nobody, started within 1 s."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        gid = await add_group(engine)
        aid = await approve_agent(engine, "agent-1", gid)
        task_id = await add_rule(engine, [aid], gid=gid, execute="/usr/bin/id -un")

        async def three_done() -> list:
            rows = await runs_of(engine, task_id, task_process.c.status == statuses.SUCCESS)
            return rows if len(rows) >= 3 else []

        rows = await poll(three_done, 20)
    for row in rows:
        assert row["code"] == 0 and row["signal"] is None
        assert row["result"] == "nobody\n"
        assert (row["uid"], row["gid"], row["run_user"]) == (65534, 65534, "nobody")
        assert row["aid"] == aid and row["trigger"] == "schedule"
        assert 0 <= row["start"] - row["sched_us"] < 1_000_000, "started within one second"
        assert row["end"] >= row["start"] and row["sched_us"] % 1_000_000 == 0
    scheds = [r["sched_us"] for r in rows]
    assert len(set(scheds)) == len(scheds), "one run per fire"


async def test_unknown_agent_stays_pending_and_gets_nothing(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A newly registered agent is pending (status 0); nothing runs on it until it is approved."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        row = await poll(lambda: agent_row(engine, "agent-1"), 10)
        assert row["status"] == 0 and row["port"] > 0 and row["ip"] == "127.0.0.1"
        task_id = await add_rule(engine, [row["id"]])
        await asyncio.sleep(2.5)  # a negative: nothing can be awaited for what must not happen
        assert await runs_of(engine, task_id) == []
        await approve_agent(engine, "agent-1")
        await poll(lambda: runs_of(engine, task_id, task_process.c.status == statuses.SUCCESS), 10)


async def test_broken_rule_is_marked_and_the_good_one_keeps_firing(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A rule that does not parse gets its reason stored and runs nothing; the good one fires."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        bad_cron = await add_rule(engine, [aid], name="bad", rule="61 * * * *")
        bad_zone = await add_rule(engine, [aid], name="bad tz", timezone="Mars/Base")
        empty = await add_rule(engine, [aid], name="empty", execute="  ")
        good = await add_rule(engine, [aid], name="good")
        await poll(lambda: runs_of(engine, good, task_process.c.status == statuses.SUCCESS), 10)

        async def error_of(task_id: int) -> str:
            return str((await rule_row(engine, task_id))["error"])

        assert "61" in await poll(lambda: error_of(bad_cron), 5)
        assert "Mars/Base" in await poll(lambda: error_of(bad_zone), 5)
        assert (await poll(lambda: error_of(empty), 5)).startswith("execute")
        for task_id in (bad_cron, bad_zone, empty):
            assert await runs_of(engine, task_id) == []
        await edit_rule(engine, bad_cron, rule="* * * * * *")
        await poll(lambda: runs_of(engine, bad_cron, task_process.c.status == statuses.SUCCESS), 10)
        assert await error_of(bad_cron) == ""


async def test_rule_edits_take_effect_within_a_second(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """Editing the command, pausing and deleting a rule change what runs within about a second."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(engine, [aid], execute="/bin/echo first")

        async def output_seen(text: str) -> list:
            rows = await runs_of(engine, task_id, task_process.c.status == statuses.SUCCESS)
            return [r for r in rows if r["result"] == text]

        await poll(lambda: output_seen("first\n"), 10)
        edited_us = now_us()
        await edit_rule(engine, task_id, execute="/bin/echo second")
        [first_second, *_] = await poll(lambda: output_seen("second\n"), 10)
        assert first_second["sched_us"] - edited_us < 2_500_000

        paused_us = now_us()
        await edit_rule(engine, task_id, status=0)
        await asyncio.sleep(3)  # a negative: nothing to await for runs that must not happen
        # Fires planned or sent ahead before the pause are recorded (skipped, or killed before
        # their start); none may start.
        ran = task_process.c.start > 0
        late = await runs_of(engine, task_id, task_process.c.sched_us > paused_us + 1_500_000, ran)
        assert late == [], "a paused rule stops firing within about a second"

        await edit_rule(engine, task_id, status=1)
        resumed_us = now_us()
        await poll(lambda: runs_of(engine, task_id, task_process.c.sched_us > resumed_us), 10)
        await edit_rule(engine, task_id, status=-1)
        deleted_us = now_us()
        await asyncio.sleep(3)
        assert (
            await runs_of(engine, task_id, task_process.c.sched_us > deleted_us + 1_500_000, ran)
            == []
        )


async def test_metrics_endpoint_reports_dispatch_and_outcomes(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """GET /metrics on the center shows dispatch lateness, start lateness and runs by status."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(engine, [aid])
        await poll(lambda: runs_of(engine, task_id, task_process.c.status == statuses.SUCCESS), 10)
        await asyncio.sleep(1.5)  # the gauges refresh on the agents poll; nothing announces it
        reader, writer = await asyncio.open_connection("127.0.0.1", center.metrics_port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            body = (await reader.read()).decode()
        writer.close()
    assert body.startswith("HTTP/1.1 200 OK")
    figures = dict(
        line.rsplit(" ", 1)
        for line in body.split("\r\n\r\n", 1)[1].splitlines()
        if line and not line.startswith("#")
    )
    assert float(figures["unitedcron_dispatch_lateness_seconds_count"]) >= 1
    assert float(figures["unitedcron_start_lateness_seconds_count"]) >= 1
    assert float(figures['unitedcron_runs_total{status="success"}']) >= 1
    assert figures["unitedcron_leader"] == "1.0"
    assert figures["unitedcron_agents_connected"] == "1.0"
