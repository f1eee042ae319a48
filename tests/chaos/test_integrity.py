"""Nothing lost, nothing twice when an agent dies while spawning or freezes with runs in flight:
the issue's focused re-check, with a ledger the jobs write themselves (MariaDB, real agent)."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from center.store.db import create_engine, upgrade_database
from center.tables import crontab, task_process
from protocol import statuses
from tests.chaos.integrity import (
    LEDGER_JOB,
    after_second_boundary,
    agent_process,
    check,
    in_flight,
)
from tests.integration.cluster import (
    SECRET,
    add_rule,
    approve_agent,
    now_us,
    poll,
    running_center,
)

SEED_ENV = "UNITEDCRON_CHAOS_SEED"
pytestmark = [pytest.mark.slow, pytest.mark.mysql, pytest.mark.timeout(240)]


@pytest.fixture
def effects_dir() -> Iterator[Path]:
    """Where the jobs (as nobody) write their ledger: pytest's tmp_path is root-only."""
    path = Path(tempfile.mkdtemp(prefix="uc-integrity-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_kills_and_freezes_lose_nothing_and_run_nothing_twice(
    mysql_url: str, tmp_path: Path, effects_dir: Path, chaos_summary: list[str]
) -> None:
    """kill -9 of the agent 0-60 ms after a second boundary, and SIGSTOP 150-300 ms after one
    for 4-8 s, with every-second rules that retry: no fire runs twice unless its rule asks for
    at least once, no run that ran is "never started", no finished run is `lost` (but for those
    whose agent died under them), every `lost` row says what the agent knew."""
    seed = int(os.environ.get(SEED_ENV) or random.randrange(1 << 32))
    rng = random.Random(seed)
    await upgrade_database(mysql_url)
    engine = create_engine(mysql_url)
    kills: list[int] = []
    try:
        async with (
            running_center(mysql_url) as center,
            agent_process(tmp_path / "state", center.registration_port, "agent-i", SECRET) as agent,
        ):
            aid = await approve_agent(engine, "agent-i")
            common = {"shell": 1, "cwd": str(effects_dir), "retries": 1, "retry_backoff_s": 0.5}
            once = [await add_rule(engine, [aid], execute=LEDGER_JOB, **common) for _ in range(3)]
            again = await add_rule(
                engine, [aid], execute=LEDGER_JOB, retry_unknown="retry", **common
            )
            await poll(lambda: _count(engine, statuses.SUCCESS), 20)
            for _ in range(3):
                await after_second_boundary(rng, 0, 60)
                kills.append(now_us())
                await agent.kill9()
                await asyncio.sleep(rng.uniform(0.2, 1.0))
                await agent.start()
                await asyncio.sleep(3)
            for _ in range(3):
                await after_second_boundary(rng, 150, 300)
                agent.freeze(True)
                await asyncio.sleep(rng.uniform(4, 8))
                agent.freeze(False)
                await asyncio.sleep(3)
            async with engine.begin() as conn:
                await conn.execute(update(crontab).values(status=0, update_time=now_us()))
            await poll(lambda: _idle(engine), 60, every_s=0.5)
        async with engine.connect() as conn:
            rows = [dict(r) for r in (await conn.execute(select(task_process))).mappings()]
    finally:
        await engine.dispose()
    killed = set().union(*(in_flight(rows, aid, at) for at in kills))
    verdict = check(rows, effects_dir / "ledger", {again}, killed)
    chaos_summary.append(
        f"integrity seed {seed} ({SEED_ENV} repeats it): {len(rows)} rows over {len(once) + 1} "
        f"rules, lost {sum(r['status'] == statuses.LOST for r in rows)}, "
        f"failures {verdict.failures() or 'none'}"
    )
    assert not verdict.failures(), verdict.failures()


async def _count(engine, status: str) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).where(task_process.c.status == status)
        return int((await conn.execute(query)).scalar_one())


async def _idle(engine) -> bool:
    async with engine.connect() as conn:
        query = select(func.count()).where(task_process.c.status.in_(statuses.ACTIVE))
        return int((await conn.execute(query)).scalar_one()) == 0
