"""Integrity soak: a center, three real agent processes on MariaDB, rules every second that
write their own ledger, and for N seconds (600 by default) random faults on the agents: kill -9
just after a second boundary, or SIGSTOP for 4-12 s with short runs in flight. Prints its seed
and the counts of tests/chaos/integrity.check, each of which must be zero.

    .venv/bin/python bench/soak_integrity.py [SECONDS] [--seed N]
    (UNITEDCRON_TEST_MYSQL picks the server; default mysql://root@127.0.0.1:3306)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

import pymysql
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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

SERVER = os.environ.get("UNITEDCRON_TEST_MYSQL", "mysql+aiomysql://root@127.0.0.1:3306")


@contextlib.contextmanager
def fresh_database() -> object:
    url = make_url(SERVER).set(drivername="mysql+aiomysql")
    name = f"uc_soak_{secrets.token_hex(4)}"
    conn = pymysql.connect(
        host=url.host,
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
    )
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


async def soak(seconds: float, seed: int, work: Path, ledger_dir: Path) -> None:
    rng = random.Random(seed)
    with fresh_database() as url:
        await upgrade_database(url)
        engine = create_engine(url)
        kills: list[tuple[int, int]] = []  # (aid, at µs)
        freezes = 0
        async with contextlib.AsyncExitStack() as stack:
            center = await stack.enter_async_context(running_center(url))
            agents, aids = [], []
            for i in range(3):
                name = f"soak-{i}"
                agents.append(
                    await stack.enter_async_context(
                        agent_process(work / name, center.registration_port, name, SECRET)
                    )
                )
                aids.append(await approve_agent(engine, name))
            common = {"shell": 1, "cwd": str(ledger_dir), "retries": 1, "retry_backoff_s": 0.5}
            again: set[int] = set()
            for i in range(12):
                extra = {"retry_unknown": "retry"} if i % 4 == 3 else {}
                rule = "* * * * * *" if i % 2 == 0 else "*/2 * * * * *"
                task_id = await add_rule(
                    engine, [aids[i % 3]], rule=rule, execute=LEDGER_JOB, **common, **extra
                )
                if extra:
                    again.add(task_id)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                k = rng.randrange(3)
                if rng.random() < 0.5:
                    await after_second_boundary(rng, 0, 60)
                    kills.append((aids[k], now_us()))
                    await agents[k].kill9()
                    await asyncio.sleep(rng.uniform(0.2, 2.0))
                    await agents[k].start()
                else:
                    await after_second_boundary(rng, 150, 300)
                    agents[k].freeze(True)
                    await asyncio.sleep(rng.uniform(4, 12))
                    agents[k].freeze(False)
                    freezes += 1
                await asyncio.sleep(rng.uniform(3, 6))
            async with engine.begin() as conn:
                await conn.execute(update(crontab).values(status=0, update_time=now_us()))

            async def idle() -> bool:
                query = select(func.count()).where(task_process.c.status.in_(statuses.ACTIVE))
                async with engine.connect() as conn:
                    return int((await conn.execute(query)).scalar_one()) == 0

            await poll(idle, 120, every_s=0.5)
        async with engine.connect() as conn:
            rows = [dict(r) for r in (await conn.execute(select(task_process))).mappings()]
        await engine.dispose()
    killed = set().union(*(in_flight(rows, aid, at) for aid, at in kills))
    verdict = check(rows, ledger_dir / "ledger", again, killed)
    by_status: dict[str, int] = {}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
    print(f"seed {seed}: {seconds:.0f} s, 3 agents, 12 rules, {len(rows)} run rows")
    print(f"faults: {len(kills)} agent kill -9, {freezes} freezes of 4-12 s")
    print(f"runs by status: {dict(sorted(by_status.items()))}")
    for name in ("twice", "never_started_but_ran", "finished_but_lost", "lost_without_knowledge"):
        found = getattr(verdict, name)
        print(f"{name}: {len(found)}" + (f"  e.g. {found[:3]}" if found else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("seconds", nargs="?", type=float, default=600)
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 32))
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="uc-soak-") as work,
        tempfile.TemporaryDirectory(prefix="uc-soak-ledger-") as ledger,
    ):
        os.chmod(ledger, 0o777)
        asyncio.run(soak(args.seconds, args.seed, Path(work), Path(ledger)))


if __name__ == "__main__":
    main()
