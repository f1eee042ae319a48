"""A retry the rule asks for is planned even when the first write of it fails transiently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.tables import task_process
from tests.chaos.known_bugs import RETRY_LOST
from tests.integration.cluster import (
    add_rule,
    approve_agent,
    at_rule,
    poll,
    running_agent,
    running_center,
    runs_of,
)

pytestmark = pytest.mark.timeout(60)


async def test_a_retry_survives_one_failed_write(
    db_url: str, engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A failed run of a rule with retries gets its attempt 1 although the first try to write
    that retry hit a transient store error."""
    real = store.insert_planned
    failures: list[str] = []

    async def flaky_insert(engine: AsyncEngine, lease: Any, runs: list[Any], *a: Any, **k: Any):
        if any(r.attempt > 0 for r in runs) and not failures:
            failures.append(runs[0].runid)
            raise OperationalError("INSERT INTO task_process", {}, Exception("injected deadlock"))
        return await real(engine, lease, runs, *a, **k)

    monkeypatch.setattr(store, "insert_planned", flaky_insert)
    async with running_center(db_url) as center, running_agent(tmp_path, center.registration_port):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(
            engine, [aid], rule=at_rule(1), execute="/bin/false", retries=1, retry_backoff_s=0.2
        )
        await poll(lambda: _true(failures), 15)
        try:
            await poll(lambda: runs_of(engine, task_id, task_process.c.attempt == 1), 8)
        except TimeoutError:
            pytest.fail(f"regression of {RETRY_LOST}")


async def _true(value: list[str]) -> bool:
    return bool(value)
