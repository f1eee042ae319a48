"""Integrity rounds shared by the focused chaos test and the soak: a real agent process killed
just after a second boundary or frozen with short runs in flight, jobs that write a ledger of
their own starts and ends, and the checks of what the database says against it."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol import statuses

S = 1_000_000
# Each job appends "start <runid>" and, 0.3 s later, "end <runid>" to the ledger.
LEDGER_JOB = (
    'echo "start $UNITEDCRON_RUNID" >> ledger; sleep 0.3; echo "end $UNITEDCRON_RUNID" >> ledger'
)


def fire_of(runid: str) -> tuple[str, str, str]:
    """(rule, scheduled µs, instance) of a run id: every attempt of one fire shares it."""
    task_id, sched_us, _aid, _attempt, instance = runid.split("-")
    return task_id, sched_us, instance


def read_ledger(path: Path) -> tuple[Counter[str], set[str]]:
    """(starts per run id, run ids that wrote their end) from the jobs' own ledger."""
    starts: Counter[str] = Counter()
    ends: set[str] = set()
    if path.exists():
        for line in path.read_text().splitlines():
            what, _, runid = line.partition(" ")
            if what == "start":
                starts[runid] += 1
            elif what == "end":
                ends.add(runid)
    return starts, ends


@dataclass
class Verdict:
    """What the integrity checks found; every list empty when all holds."""

    twice: list[str] = field(default_factory=list)
    never_started_but_ran: list[str] = field(default_factory=list)
    finished_but_lost: list[str] = field(default_factory=list)
    lost_without_knowledge: list[str] = field(default_factory=list)

    def failures(self) -> dict[str, list[str]]:
        return {k: v for k, v in self.__dict__.items() if v}


def check(
    rows: list[dict[str, Any]], ledger: Path, at_least_once: set[int], killed: set[str]
) -> Verdict:
    """Pure over the rows and the ledger: no fire executed twice unless its rule asks for at
    least once; no run that ran recorded "never started"; no run that finished recorded
    `lost` unless its agent was killed (`killed`: run ids in flight at a kill -9, whose exit
    status died with the agent); every `lost` row says what the agent knew."""
    starts, ends = read_ledger(ledger)
    out = Verdict()
    by_fire: Counter[tuple[str, str, str]] = Counter()
    for runid, count in starts.items():
        by_fire[fire_of(runid)] += count
    out.twice = [
        f"{fire} ran {n} times"
        for fire, n in by_fire.items()
        if n > 1 and int(fire[0]) not in at_least_once
    ]
    for row in rows:
        reason, runid = str(row["reason"]), str(row["runid"])
        if "never started" in reason and runid in starts:
            out.never_started_but_ran.append(f"{runid}: {reason}")
        if row["status"] != statuses.LOST:
            continue
        if runid in ends and runid not in killed:
            out.finished_but_lost.append(f"{runid}: {reason}")
        if not (reason.startswith("outcome unknown") or "never started" in reason):
            out.lost_without_knowledge.append(f"{runid}: {reason}")
    return out


@dataclass
class AgentProcess:
    """`python -m agent` on a fixed state dir, killed, frozen and started again at will."""

    env: dict[str, str]
    log: Path
    proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent", env=self.env, stdout=out, stderr=out
            )

    async def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        async with asyncio.timeout(10):
            await self.proc.wait()

    def freeze(self, on: bool) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if on else signal.SIGCONT)

    async def stop(self) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return None
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            return await self.proc.wait()


@asynccontextmanager
async def agent_process(
    state: Path, center_port: int, name: str, secret: str
) -> AsyncIterator[AgentProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITEDCRON_")} | {
        "UNITEDCRON_SECRET": secret,
        "UNITEDCRON_AGENT_LISTEN": "127.0.0.1:0",
        "UNITEDCRON_AGENT_CENTER": f"127.0.0.1:{center_port}",
        "UNITEDCRON_AGENT_NAME": name,
        "UNITEDCRON_LOG_FORMAT": "json",
        "UNITEDCRON_AGENT_STATE_DIR": str(state),
        "UNITEDCRON_AGENT_REGISTER_INTERVAL_S": "1",
    }
    agent = AgentProcess(env, state.parent / f"{name}.log")
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()


async def after_second_boundary(rng: random.Random, low_ms: int, high_ms: int) -> None:
    """Sleep until `low_ms`..`high_ms` after the next second boundary (when runs spawn)."""
    now = time.time()
    target = int(now) + 1 + rng.uniform(low_ms, high_ms) / 1000
    await asyncio.sleep(target - now)


def in_flight(rows: list[dict[str, Any]], aid: int, at_us: int) -> set[str]:
    """Run ids of `aid` that may have been running at `at_us` (scheduled within 3 s before)."""
    return {
        str(r["runid"])
        for r in rows
        if r["aid"] == aid and at_us - 3 * S <= max(r["sched_us"], r["due_us"]) <= at_us + S
    }
