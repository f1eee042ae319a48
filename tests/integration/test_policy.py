"""The run_user policy: an agent's allowlist and root switch are honoured before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from center.tables import task_process
from protocol import statuses
from tests.integration.cluster import (
    add_rule,
    approve_agent,
    poll,
    rule_row,
    running_agent,
    running_center,
    runs_of,
)

pytestmark = pytest.mark.timeout(90)


async def test_center_plans_nothing_for_a_user_the_agent_refuses(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A rule whose run_user an agent refuses gets no run there and says why; allowed ones run."""
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port, agent_allowed_users=("nobody",)),
    ):
        aid = await approve_agent(engine, "agent-1")
        refused = await add_rule(engine, [aid], run_user="daemon")
        as_root = await add_rule(engine, [aid], run_user="root")
        allowed = await add_rule(engine, [aid], run_user="nobody")
        await poll(lambda: runs_of(engine, allowed, task_process.c.status == statuses.SUCCESS), 10)

        async def notice(task_id: int) -> str:
            return str((await rule_row(engine, task_id))["notice"])

        assert "'daemon' is refused by the policy of agent(s) agent-1" in await poll(
            lambda: notice(refused), 10
        )
        assert "'root' is refused" in await poll(lambda: notice(as_root), 10)
        assert await notice(allowed) == ""
    assert await runs_of(engine, refused) == [] and await runs_of(engine, as_root) == []


async def test_a_new_leader_clears_a_note_that_no_longer_holds(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """A note an earlier leader wrote ("no approved agent") is cleared by the next leader once
    the rule runs: a leader writes a note only when it differs from the one on file."""
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
    stale = "no approved agent to run it (list agents, or give the group approved agents)"
    task_id = await add_rule(engine, [aid], notice=stale)
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        await poll(lambda: runs_of(engine, task_id, task_process.c.status == statuses.SUCCESS), 10)
        assert await poll(lambda: _cleared(engine, task_id), 10)


async def _cleared(engine: AsyncEngine, task_id: int) -> bool:
    return (await rule_row(engine, task_id))["notice"] == ""
