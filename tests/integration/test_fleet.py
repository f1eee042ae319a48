"""Fleet services with real agent processes: N instances in total over the pool, moved when an
agent stops answering, the stale ones stopped when it returns, drained on demand."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center.service import CenterService
from center.tables import agents, daemon_placement, task_process
from protocol import statuses
from tests.integration.cluster import (
    SECRET,
    add_group,
    add_rule,
    approve_agent,
    now_us,
    poll,
    running_agent,
    running_center,
    runs_of,
)
from tests.security.relay import Relay

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
NAMES = ("fleet-1", "fleet-2", "fleet-3")
MARK = "7717"  # `sleep 7717`: the service's instances, told apart from any other process


def _agent_env(tmp_path: Path, center_port: int, name: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("UNITEDCRON_")} | {
        "UNITEDCRON_SECRET": SECRET,
        "UNITEDCRON_AGENT_LISTEN": "127.0.0.1:0",
        "UNITEDCRON_AGENT_CENTER": f"127.0.0.1:{center_port}",
        "UNITEDCRON_AGENT_NAME": name,
        "UNITEDCRON_LOG_FORMAT": "json",
        "UNITEDCRON_LOG_LEVEL": "warning",
        "UNITEDCRON_AGENT_STATE_DIR": str(tmp_path / name),
        "UNITEDCRON_AGENT_REGISTER_INTERVAL_S": "1",
        "UNITEDCRON_AGENT_KILL_GRACE_S": "1",
        "UNITEDCRON_AGENT_METRICS_LISTEN": "",
    }


@contextlib.asynccontextmanager
async def _agents(tmp_path: Path, center_port: int) -> AsyncIterator[dict[str, psutil.Process]]:
    procs = {
        name: await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", env=_agent_env(tmp_path, center_port, name)
        )
        for name in NAMES
    }
    try:
        yield {name: psutil.Process(proc.pid) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await asyncio.gather(*(proc.wait() for proc in procs.values()))


def _instances_now(procs: dict[str, psutil.Process]) -> dict[str, int]:
    """Instance processes under each agent (`sleep MARK` among its descendants)."""
    out = {}
    for name, proc in procs.items():
        count = 0
        with contextlib.suppress(psutil.Error):
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    count += child.cmdline() == ["/bin/sleep", MARK]
        out[name] = count
    return out


async def _until(procs: dict[str, psutil.Process], check, timeout_s: float) -> dict[str, int]:
    async def seen() -> dict[str, int] | None:
        counts = await asyncio.to_thread(_instances_now, procs)
        return counts if check(counts) else None

    return await poll(seen, timeout_s, every_s=0.2)


async def _connected(center: CenterService, aids: list[int]) -> None:
    """Every agent linked to the leader: nothing moves when an agent joins later."""

    async def linked() -> bool | None:
        links = center.leader.pool.links if center.leader else {}
        return True if all(a in links and links[a].connected for a in aids) else None

    await poll(linked, 30)


async def _fleet(engine: AsyncEngine, center: CenterService, tmp_path: Path):
    gid = await add_group(engine)
    await _connected(center, [await approve_agent(engine, name, gid) for name in NAMES])
    task_id = await add_rule(
        engine,
        [],
        gid=gid,
        rule="",
        is_daemon=1,
        routing="least_loaded",
        process_num=4,
        max_per_agent=2,
        execute=f"/bin/sleep {MARK}",
    )
    return gid, task_id


async def test_a_service_keeps_four_instances_over_the_pool_through_a_stopped_agent(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """4 instances, at most 2 per agent; SIGSTOP one agent: 4 run on the others within 10 s;
    SIGCONT: its stale instances stop and the total is 4 again."""
    async with (
        running_center(db_url) as center,
        _agents(tmp_path, center.registration_port) as procs,
    ):
        _, task_id = await _fleet(engine, center, tmp_path)
        counts = await _until(procs, lambda c: sum(c.values()) == 4, 30)
        assert max(counts.values()) <= 2
        victim = max(counts, key=lambda name: (counts[name], name))
        procs[victim].suspend()
        others = {n: p for n, p in procs.items() if n != victim}
        started = asyncio.get_running_loop().time()
        moved = await _until(others, lambda c: sum(c.values()) == 4, 20)
        assert asyncio.get_running_loop().time() - started < 10, "moved within 10 s"
        assert max(moved.values()) <= 2
        procs[victim].resume()
        after = await _until(procs, lambda c: c[victim] == 0 and sum(c.values()) == 4, 30)
        assert max(after.values()) <= 2
        rows = await _placement(engine, task_id)
        assert len(rows) == 4 and all(aid for aid in rows.values())
        labels = {"task_id": str(task_id), "kind": "placed"}

        async def gauge() -> float | None:
            value = center.metrics.registry.get_sample_value("unitedcron_service_instances", labels)
            return value if value == 4 else None

        assert await poll(gauge, 10) == 4


async def _placement(engine: AsyncEngine, task_id: int) -> dict[int, int]:
    query = select(daemon_placement.c.instance, daemon_placement.c.aid).where(
        daemon_placement.c.task_id == task_id
    )
    async with engine.connect() as conn:
        return {int(i): int(a) for i, a in (await conn.execute(query)).all()}


async def test_drain_moves_instances_first_then_disables_the_agent(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """Draining an agent moves its instances (the replacement starts before the old one
    stops: never fewer than 4) and ends with the agent disabled."""
    async with (
        running_center(db_url) as center,
        _agents(tmp_path, center.registration_port) as procs,
    ):
        _, task_id = await _fleet(engine, center, tmp_path)
        counts = await _until(procs, lambda c: sum(c.values()) == 4, 30)
        drained = max(counts, key=lambda name: (counts[name], name))
        async with engine.begin() as conn:
            await conn.execute(
                update(agents).where(agents.c.name == drained).values(drain=1, update_time=now_us())
            )
        lowest = 4

        def empty(c: dict[str, int]) -> bool:
            nonlocal lowest
            lowest = min(lowest, sum(c.values()))
            return c[drained] == 0 and sum(c.values()) == 4

        await _until(procs, empty, 40)
        assert lowest >= 4, "make-before-break: never fewer than 4"

        async def disabled() -> tuple[int, int] | None:
            async with engine.connect() as conn:
                query = select(agents.c.status, agents.c.drain).where(agents.c.name == drained)
                row = (await conn.execute(query)).one()
            return (row[0], row[1]) if row[0] == 0 else None

        assert await poll(disabled, 20) == (0, 0)
        assert len(await _placement(engine, task_id)) == 4


async def test_at_most_n_a_cut_off_agent_stops_before_its_instances_run_elsewhere(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """partition_stop_s: the link to one agent is cut (its process lives on); it stops its
    instance itself, the center places it elsewhere only after the same time, and at no
    sample do more than N instances run."""
    relay = Relay()
    relay_port = await relay.start()
    async with running_center(db_url) as center:
        env = _agent_env(tmp_path, center.registration_port, "cut-1")
        env["UNITEDCRON_AGENT_ADVERTISE"] = f"127.0.0.1:{relay_port}"
        env["UNITEDCRON_AGENT_LISTEN"] = f"127.0.0.1:{_free_port()}"
        relay.target_port = int(env["UNITEDCRON_AGENT_LISTEN"].rsplit(":", 1)[1])
        cut = await asyncio.create_subprocess_exec(sys.executable, "-m", "agent", env=env)
        other = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent",
            env=_agent_env(tmp_path, center.registration_port, "stay-1"),
        )
        procs = {"cut-1": psutil.Process(cut.pid), "stay-1": psutil.Process(other.pid)}
        try:
            gid = await add_group(engine)
            await _connected(center, [await approve_agent(engine, name, gid) for name in procs])
            await add_rule(
                engine,
                [],
                gid=gid,
                rule="",
                is_daemon=1,
                routing="least_loaded",
                process_num=2,
                max_per_agent=2,
                partition_stop_s=3,
                execute=f"/bin/sleep {MARK}",
            )
            await _until(procs, lambda c: c == {"cut-1": 1, "stay-1": 1}, 30)
            await relay.close()
            most = 0

            def moved(c: dict[str, int]) -> bool:
                nonlocal most
                most = max(most, sum(c.values()))
                return c == {"cut-1": 0, "stay-1": 2}

            await _until(procs, moved, 30)
            assert most <= 2, f"{most} instances ran at once"
        finally:
            for proc in (cut, other):
                proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                await asyncio.gather(cut.wait(), other.wait())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_one_shot_strategy_rule_is_capped_across_the_fleet(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """round_robin, every second, process_num 1, runs of 2.5 s on two agents: never two at
    once anywhere (each agent alone would allow one), the others skipped with the reason."""
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port, name="cap-1"),
        running_agent(tmp_path, center.registration_port, name="cap-2"),
    ):
        gid = await add_group(engine)
        await _connected(center, [await approve_agent(engine, n, gid) for n in ("cap-1", "cap-2")])
        task_id = await add_rule(
            engine, [], gid=gid, routing="round_robin", process_num=1, execute="/bin/sleep 2.5"
        )
        final = task_process.c.status.in_([statuses.SUCCESS, statuses.SKIPPED])
        succeeded = task_process.c.status == statuses.SUCCESS  # two runs, one after the other
        await poll(lambda: _at_least(runs_of(engine, task_id, succeeded), 2), 40)
        rows = await poll(lambda: _at_least(runs_of(engine, task_id, final), 6), 40)
    done = sorted((r["start"], r["end"]) for r in rows if r["status"] == statuses.SUCCESS)
    assert len(done) >= 2 and len({r["aid"] for r in rows}) == 2
    for (_, end), (start, _) in itertools.pairwise(done):
        assert start >= end, "two runs at once across the fleet"
    skipped = [r["reason"] for r in rows if r["status"] == statuses.SKIPPED]
    assert skipped and all("already running across the fleet" in r for r in skipped)


async def _at_least(rows_soon, count: int):  # type: ignore[no-untyped-def]
    rows = await rows_soon
    return rows if len(rows) >= count else None
