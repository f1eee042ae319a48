"""Rows a group admin can get into `crontab` must not stop the center planning other rules."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from center.store.db import upgrade_database
from center.tables import task_process
from protocol import statuses
from tests.integration.cluster import (
    add_group,
    add_rule,
    approve_agent,
    now_us,
    poll,
    rule_row,
    running_agent,
    running_center,
    runs_of,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
async def db_url(sqlite_url: str) -> str:
    """SQLite only: how the center treats a row does not depend on the backend, and each of
    these waits out its timeouts while the bug stands."""
    async with asyncio.timeout(60):
        await upgrade_database(sqlite_url)
    return sqlite_url


async def _succeeds_after(engine: AsyncEngine, task_id: int, since_us: int) -> list:
    return await runs_of(
        engine,
        task_id,
        task_process.c.status == statuses.SUCCESS,
        task_process.c.sched_us > since_us,
    )


async def _hostile_rule_beside_a_good_one(
    db_url: str, engine: AsyncEngine, tmp_path: Path, **hostile: object
) -> int:
    """A good rule runs every second on an agent; a hostile rule for the same agent appears,
    then a new rule. The good one keeps running, the new one is picked up and runs, and the
    hostile one gets its error; returns the hostile rule's id."""
    gid = await add_group(engine)
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port),
    ):
        aid = await approve_agent(engine, "agent-1", gid)
        good = await add_rule(engine, [aid], gid=gid, name="good")
        await poll(lambda: _succeeds_after(engine, good, 0), 15)
        bad = await add_rule(engine, [aid], gid=gid, name="hostile", **hostile)
        later = await add_rule(engine, [aid], gid=gid, name="later")
        since = now_us() + 1_000_000
        await poll(lambda: _succeeds_after(engine, good, since), 8)
        await poll(lambda: _succeeds_after(engine, later, since), 8)
        await poll(lambda: _error_of(engine, bad), 10)
    return bad


async def _error_of(engine: AsyncEngine, task_id: int) -> str:
    return str((await rule_row(engine, task_id))["error"])


async def test_a_time_zone_naming_a_folder_is_a_rule_error(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """timezone = 'Europe' (a folder of the zone database) is reported on the rule as an
    unknown zone; the center goes on planning the other rules."""
    bad = await _hostile_rule_beside_a_good_one(db_url, engine, tmp_path, timezone="Europe")
    assert (await _error_of(engine, bad)).startswith("timezone:")


async def test_an_env_value_with_a_lone_surrogate_is_a_rule_error(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """env = {"X": "\\ud800"} (valid JSON text, not valid Unicode) is reported on the rule; the
    center goes on running the agent's other rules."""
    env = json.dumps({"X": "\ud800"})  # ensure_ascii: the column holds the escape
    bad = await _hostile_rule_beside_a_good_one(db_url, engine, tmp_path, env=env)
    assert (await _error_of(engine, bad)).startswith("env:")
