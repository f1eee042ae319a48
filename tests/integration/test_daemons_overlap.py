"""Daemons and overlap policies through the whole system, on SQLite and MariaDB."""

from __future__ import annotations

import itertools
import os
import signal
from pathlib import Path

import psutil
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from center.tables import daemon_state, task_process
from protocol import statuses
from tests.integration.cluster import (
    add_rule,
    approve_agent,
    edit_rule,
    now_us,
    poll,
    running_agent,
    running_center,
    runs_of,
)

pytestmark = pytest.mark.timeout(120)
MARK = "DAEMON_TEST_TAG"


def _instances(tag: str) -> list[psutil.Process]:
    """Processes of the test daemon (`sleep` with a tag in its environment), alive."""
    found = []
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            argv = proc.info["cmdline"] or [""]
            if os.path.basename(argv[0]) == "sleep" and proc.environ().get(MARK) == tag:
                found.append(proc)
        except psutil.Error:
            continue
    return found


async def _count(tag: str, n: int) -> list[psutil.Process] | bool:
    """The processes when there are exactly `n` (True for none), else False to poll again."""
    found = _instances(tag)
    return (found or True) if len(found) == n else False


async def test_daemon_keeps_n_instances_restarts_them_and_stops_on_pause(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """process_num=2 runs two `nobody` processes; kill -9 brings one back; pause leaves none."""
    tag = f"{os.getpid()}-{now_us()}"
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(
            engine,
            [aid],
            is_daemon=1,
            process_num=2,
            rule="",
            execute="sleep 600",
            env=f'{{"{MARK}": "{tag}"}}',
        )
        two = await poll(lambda: _count(tag, 2), 15)
        assert {p.info["uids"].real for p in two} == {65534}
        killed_at = now_us()
        os.kill(two[0].pid, signal.SIGKILL)
        await poll(
            lambda: runs_of(
                engine,
                task_id,
                task_process.c.trigger == "daemon",
                task_process.c.start > killed_at,
            ),
            15,
        )
        back = await poll(lambda: _count(tag, 2), 15)
        assert two[0].pid not in {p.pid for p in back}

        async def state() -> dict | None:
            async with engine.connect() as conn:
                row = (await conn.execute(select(daemon_state))).mappings().first()
            return dict(row) if row and row["running"] == 2 else None

        assert (await poll(state, 10))["wanted"] == 2
        await edit_rule(engine, task_id, status=0)
        await poll(lambda: _count(tag, 0), 15)
        rows = await poll(lambda: _final(engine, task_id, 3), 15)
    assert {r["status"] for r in rows} >= {statuses.KILLED}
    assert all(r["trigger"] == "daemon" for r in rows)


async def _final(engine: AsyncEngine, task_id: int, n: int) -> list:
    rows = await runs_of(engine, task_id, task_process.c.status.in_(statuses.FINAL))
    return rows if len(rows) >= n else []


@pytest.mark.parametrize(
    ("overlap", "process_num"), [("skip", 1), ("queue", 1), ("replace", 1), ("parallel", 2)]
)
async def test_overlap_policies_with_a_slow_rule_every_second(
    db_url: str, engine: AsyncEngine, tmp_path: Path, overlap: str, process_num: int
):
    """A 2.5 s job firing every second: each overlap policy leaves the rows it promises."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(
            engine, [aid], execute="sleep 2.5", overlap=overlap, process_num=process_num
        )
        rows = await poll(lambda: _final(engine, task_id, 6), 30)
        await edit_rule(engine, task_id, status=0)
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    if overlap == "skip":
        assert by_status.get("skipped", 0) >= 2 and by_status.get("success", 0) >= 1
        assert all("already running" in r["reason"] for r in rows if r["status"] == "skipped")
    elif overlap == "queue":
        skipped = [r for r in rows if r["status"] == "skipped"]
        assert skipped and all("already queued" in r["reason"] for r in skipped)
        assert by_status.get("success", 0) >= 2
    elif overlap == "replace":
        killed = [r for r in rows if r["status"] == "killed"]
        assert killed and all(r["reason"].startswith("replaced by") for r in killed)
    else:
        assert by_status.get("skipped", 0) >= 1 and by_status.get("success", 0) >= 2
        starts = sorted((r["start"], r["end"]) for r in rows if r["status"] == "success")
        overlapping = any(b[0] < a[1] for a, b in itertools.pairwise(starts))
        assert overlapping, "parallel runs overlap in time"
