"""Chaos: two centers, two agents, rules every second, kill -9 and cut links on MariaDB."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.orphans import UNKNOWN
from center.store.db import create_engine
from center.tables import concurrency_key, crontab, task_process, workflow, workflow_run
from protocol import statuses
from tests.chaos import flow_invariants as flow_inv
from tests.chaos import invariants as inv
from tests.chaos.cluster import Cluster
from tests.chaos.faults import KINDS, Fault, Injector, fault_kinds
from tests.chaos.known_bugs import KnownBugs
from tests.chaos.monitor import Monitor
from tests.chaos.procs import now_us
from tests.integration.cluster import add_group, add_rule, approve_agent, poll
from tests.integration.test_limits_params import most_at_once
from tests.integration.test_workflows import add_workflow

S = 1_000_000
SEED_ENV = "UNITEDCRON_CHAOS_SEED"  # set it to a summary's seed to repeat that fault schedule
# Faults are injected this long (longer only until each kind happened once); a longer soak
# runs with UNITEDCRON_CHAOS_SECONDS=600.
CHAOS_S = float(os.environ.get("UNITEDCRON_CHAOS_SECONDS") or 75)
# Backstop: 75 s of faults finish in about 100 s; the rest is room for a slow machine.
pytestmark = [pytest.mark.slow, pytest.mark.mysql, pytest.mark.timeout(CHAOS_S + 225)]
CALM_S = 6.0  # fault-free time before the accounted window ends
MARGIN_US = 3 * S  # fires this close to the end are not accounted for
SETTLE_S = 45.0  # the dispatch grace (10 s) and retry backoffs fit well inside
TAKEOVER_MAX_S = 5.0
# 3 s, plus one poll of the agents (0.5 s here), plus 0.5 s for a loaded machine.
OFFLINE_MAX_S = 3.0 + 1.0
RETRIES = 2
AT_LEAST_ONCE = {"retries": RETRIES, "retry_backoff_s": 1, "retry_unknown": "retry"}
# Each rule's command runs in `cwd` (the side-effect directory) with a shell: append the run
# id to agent-<aid>.out, and exit 0 unless told otherwise.
APPEND = 'a=${UNITEDCRON_RUNID#*-*-}; echo "$UNITEDCRON_RUNID" >> "agent-${a%%-*}.out"'
# The same, then exit 1 on every third second's first attempt: its retry succeeds.
FLAKY = APPEND + (
    '; [ "$UNITEDCRON_ATTEMPT" != 0 ] || [ $((UNITEDCRON_SCHED_US / 1000000 % 3)) != 0 ]'
)
# The same, then 2 s more: several run at once, and an agent killed meanwhile loses some.
SLOW = APPEND + "; sleep 2"
SLOW_KEYED = APPEND + "; sleep 0.4"


@pytest.fixture
def effects_dir() -> Iterator[Path]:
    """A directory the rules' user (nobody) may write to: pytest's tmp_path is root-only."""
    path = Path(tempfile.mkdtemp(prefix="uc-chaos-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class ChaosRun:
    """One bounded chaos run and what it leaves behind, for the checks and the summary.

    Afterwards, from the database and the commands' side effects: no run started twice, every
    run that started has its result, every fire of every rule on every target agent has
    exactly one row, and leader takeovers and offline detections stayed within their bounds.
    """

    def __init__(self, cluster: Cluster, engine: AsyncEngine, seed: int, effects: Path) -> None:
        self.cluster, self.engine, self.seed, self.effects = cluster, engine, seed, effects
        self.rng = random.Random(seed)
        self.monitor = Monitor(engine)
        self.injector = Injector(cluster, self.monitor, self.rng)
        self.targets: dict[int, list[int]] = {}
        self.retried: list[int] = []  # rules with retries
        self.window = (0, 0)
        self.rows: list[dict[str, Any]] = []
        self.flow_rows: list[dict[str, Any]] = []
        self.workflow_id = 0
        self.parents: dict[int, list[int]] = {}  # the workflow's nodes and their parents
        self.keyed: list[int] = []  # rules holding one concurrency key of limit 1
        self.ran: Counter[str] = Counter()
        self.codes: dict[str, int | None] = {}
        self.origin_us = now_us()

    @property
    def faults(self) -> list[Fault]:
        return self.injector.faults

    async def run(self) -> None:
        await self.cluster.start()
        self.monitor.start()
        await self._add_rules()
        await self.injector.recover()
        await self._faults()
        await asyncio.sleep(CALM_S)
        self.window = (self.window[0], now_us() - MARGIN_US)
        await self._settle()
        self.codes = await self.cluster.stop()
        await self._collect()

    async def _add_rules(self) -> None:
        """Approve both agents, then rules on each, on both, a flaky one and a slow one."""
        a1, a2 = self.cluster.agents
        a1.aid = await approve_agent(self.engine, a1.name)
        a2.aid = await approve_agent(self.engine, a2.name)
        both = [a1.aid, a2.aid]
        common = {"shell": 1, "cwd": str(self.effects), "run_user": "nobody"}
        for name, aids, extra in (
            ("on-a1", [a1.aid], {"execute": APPEND}),
            ("on-a2", [a2.aid], {"execute": APPEND}),
            ("on-both", both, {"execute": APPEND}),
            # The retried rules ask for at least once: a run lost with its agent is run again.
            ("flaky", both, {"execute": FLAKY, **AT_LEAST_ONCE}),
            # Still running when its agent is killed: lost on reconnect, then retried.
            (
                "slow",
                both,
                {"execute": SLOW, "process_num": 3, **AT_LEAST_ONCE},
            ),
        ):
            task_id = await add_rule(self.engine, aids, name=name, **common, **extra)
            self.targets[task_id] = aids
            if extra.get("retries"):
                self.retried.append(task_id)
        await self._add_workflow(both, common)
        await self._add_keyed(common)
        for task_id in [*self.targets, *self.parents]:
            await poll(functools.partial(self._successes, task_id), 30)
        # Every rule runs: from the next second on, each fire must be accounted for.
        self.window = (now_us() + S, 0)

    async def _add_workflow(self, both: list[int], common: dict[str, Any]) -> None:
        """A workflow every second: A and B on both agents, then C once both ended (fan-in)."""
        a, b, c = [
            await add_rule(
                self.engine,
                both,
                name=f"step-{n}",
                rule="",
                execute=APPEND,
                overlap="parallel",  # a burst after a reconnect is not skipped at the agent
                process_num=10,
                **common,
            )
            for n in "abc"
        ]
        self.parents = {a: [], b: [], c: [a, b]}
        self.workflow_id = await add_workflow(
            self.engine,
            0,
            {a: "all", b: "all", c: "all"},
            [(a, c, "success"), (b, c, "success")],
            rule="* * * * * *",
            overlap="parallel",
        )

    async def _add_keyed(self, common: dict[str, Any]) -> None:
        """Two every-second rules, one per agent, holding one key of limit 1: under leader
        kills the key must still never let two of their runs go at once."""
        gid = await add_group(self.engine, "keyed")
        async with self.engine.begin() as conn:
            await conn.execute(insert(concurrency_key).values(gid=gid, key="chaos", limit=1))
        for agent in self.cluster.agents:
            task_id = await add_rule(
                self.engine,
                [agent.aid],
                gid=gid,
                name=f"keyed-{agent.name}",
                execute=SLOW_KEYED,
                concurrency_keys="chaos",
                **common,
            )
            self.targets[task_id] = [agent.aid]
            self.keyed.append(task_id)

    async def _successes(self, task_id: int) -> int:
        query = select(func.count()).where(
            task_process.c.task_id == task_id, task_process.c.status == statuses.SUCCESS
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def _faults(self) -> None:
        """Faults one at a time, each followed by recovery and a few calm seconds."""
        deadline = time.monotonic() + CHAOS_S
        kinds = fault_kinds(self.rng)
        while time.monotonic() < deadline or set(KINDS) - {f.kind for f in self.faults}:
            await self.injector.inject(next(kinds))
            await self.injector.recover()
            await asyncio.sleep(self.rng.uniform(3.0, 5.0))

    async def _settle(self) -> None:
        """Pause the rules, then wait until no run is planned, dispatched or running."""
        async with self.engine.begin() as conn:
            await conn.execute(update(workflow).values(status=0, update_time=now_us()))
            await conn.execute(update(crontab).values(status=0, update_time=now_us()))

        async def idle() -> bool:
            query = select(func.count()).where(task_process.c.status.in_(statuses.ACTIVE))
            async with self.engine.connect() as conn:
                return int((await conn.execute(query)).scalar_one()) == 0

        await poll(idle, SETTLE_S, every_s=0.5)

    async def _collect(self) -> None:
        async with self.engine.connect() as conn:
            self.rows = [dict(r) for r in (await conn.execute(select(task_process))).mappings()]
            flows = (await conn.execute(select(workflow_run))).mappings()
            self.flow_rows = [dict(r) for r in flows]
        self.ran = inv.read_ran(sorted(self.effects.glob("agent-*.out")))
        # Kept with the logs for a post-mortem: the database is dropped after the test.
        with (self.cluster.workdir / "runs.jsonl").open("w") as out:
            out.writelines(json.dumps(row, default=str) + "\n" for row in self.rows)
        (self.cluster.workdir / "ran.txt").write_text("".join(f"{r}\n" for r in self.ran))

    # ------------------------------------------------------------ checks

    def killed_while_running(self, row: inv.Row) -> bool:
        """A run whose agent got SIGKILL while it ran: `lost` (its result died with the agent,
        though the process may well have finished) or `killed` (the restarted agent stopped
        the orphaned process)."""
        began_us = row["start"] or max(row["sched_us"], row["due_us"])
        orphan = row["status"] == statuses.LOST and row["reason"].startswith(UNKNOWN)
        return (row["status"] == statuses.LOST or orphan) and any(
            f.kind == "agent_kill"
            and self.cluster.agent(f.target).aid == row["aid"]
            and -S <= f.at_us - began_us <= 3 * S
            for f in self.faults
        )

    def problems(self) -> dict[str, list[str]]:
        """Every invariant's violations; those of a known bug are left to `self.known`."""
        rows, known = self.rows, self.known
        in_window = [r for r in rows if self.window[0] <= r["sched_us"] <= self.window[1]]
        by_runid = {r["runid"]: r for r in rows}
        return {
            "1 duplicate run keys": inv.duplicate_keys(rows),
            "1 runs started twice": inv.started_twice(self.ran),
            "2 runs without their result": inv.result_missing(
                self.ran,
                by_runid,
                lambda r: self.killed_while_running(r) or known.reconcile_race(r),
            ),
            "3 fires not accounted for": inv.unaccounted_fires(rows, self.targets, *self.window),
            "3 non-success rows without a reason": inv.unexplained(rows),
            "3 runs still active after the settle": inv.still_active(rows),
            "3 retries missing": [
                gap
                for task_id in self.retried
                for gap in inv.retries_missing(
                    in_window, task_id, RETRIES, self.window[1], known.retry_lost
                )
            ],
            "4 takeovers over 5 s": self._slow("leader_kill", TAKEOVER_MAX_S),
            "4 offline detections over 4 s": self._slow("agent_kill", OFFLINE_MAX_S)
            + self._slow("cut", OFFLINE_MAX_S)
            + self._slow("blackhole", OFFLINE_MAX_S),
            "processes not stopped cleanly": [f"{n} exit {c}" for n, c in self.codes.items() if c],
            **self._flow_problems(),
        }

    def _flow_problems(self) -> dict[str, list[str]]:
        lo, hi = self.window
        flows = [r for r in self.flow_rows if lo <= r["sched_us"] <= hi]
        return {
            "5 workflow fires without a flow run": flow_inv.fires_without_flow_run(
                flows, self.workflow_id, lo, hi
            ),
            "5 flow runs still open after the settle": flow_inv.still_open(self.flow_rows),
            "5 flow nodes out of order or run again": flow_inv.joins_broken(
                flows, self.rows, self.parents
            ),
            "5 failed flow runs without a failed node": flow_inv.failed_without_cause(
                flows, self.rows
            ),
            "6 concurrency key over its limit": self._key_over(),
        }

    def _key_over(self) -> list[str]:
        """Runs of the keyed rules that ran at once (a run lost with its agent is left out:
        its process may outlive the agent, the key is freed when it is recorded lost)."""
        ran = [
            r
            for r in self.rows
            if r["task_id"] in self.keyed and r["start"] and r["end"] and r["status"] != "lost"
        ]
        most = most_at_once(ran)
        return [f"{most} runs of the keyed rules at once"] if most > 1 else []

    @functools.cached_property
    def known(self) -> KnownBugs:
        return KnownBugs(self.faults, [self.cluster.log(c.name) for c in self.cluster.centers])

    def _slow(self, kind: str, limit_s: float) -> list[str]:
        return [
            f.line(self.origin_us)
            for f in self.faults
            if f.kind == kind and (f.measured_s is None or f.measured_s > limit_s)
        ]

    def summary(self) -> list[str]:
        span_s = max(self.window[1] - self.window[0], 0) / S
        lines = [
            f"seed {self.seed} ({SEED_ENV}={self.seed} repeats the fault schedule)",
            f"window: {span_s:.0f} s of fires, "
            f"{len(self.targets)} rules, {len(self.rows)} run rows, "
            f"{sum(self.ran.values())} command starts, monitor errors {self.monitor.errors}",
            f"runs by status: {inv.by_status(self.rows)}",
            f"runs by status, attempt 0 in the window: {inv.by_status(self._window_rows())}",
            f"flow runs by status: {inv.by_status(self.flow_rows)}",
            f"lost or killed with their agent's SIGKILL while running: {self._excused()}",
        ]
        for kind in KINDS:
            figures = [
                f"{f.measured_s:.2f}" if f.measured_s else "-"
                for f in self.faults
                if f.kind == kind
            ]
            what = "takeover" if kind == "leader_kill" else "offline detection"
            lines.append(f"{kind} ×{len(figures)}: {what} s = {', '.join(figures)}")
        lines += ["faults:"] + ["  " + f.line(self.origin_us) for f in self.faults]
        return lines + self.known.lines()

    def _excused(self) -> int:
        return sum(1 for r in self.rows if r["runid"] in self.ran and self.killed_while_running(r))

    def _window_rows(self) -> list[dict[str, Any]]:
        lo, hi = self.window
        return [r for r in self.rows if r["attempt"] == 0 and lo <= r["sched_us"] <= hi]


async def test_no_run_twice_none_forgotten_under_chaos(
    mysql_url: str, tmp_path: Path, effects_dir: Path, chaos_summary: list[str]
):
    """Under kill -9 of leaders and agents and cut links, each fire runs at most once and is
    accounted for, and takeovers and offline detections stay within bounds."""
    seed = int(os.environ.get(SEED_ENV) or random.randrange(1 << 32))
    cluster = Cluster(mysql_url, tmp_path)
    await cluster.upgrade()
    engine = create_engine(mysql_url)
    chaos = ChaosRun(cluster, engine, seed, effects_dir)
    try:
        await chaos.run()
    except BaseException:
        chaos_summary.extend(chaos.summary())
        raise
    finally:
        await chaos.monitor.stop()
        await cluster.kill_all()
        await engine.dispose()
    failed = {name: found for name, found in chaos.problems().items() if found}
    chaos_summary.extend(chaos.summary())
    report = "\n".join(
        f"{name}: {len(found)}\n  " + "\n  ".join(found[:15]) for name, found in failed.items()
    )
    assert not failed, f"logs in {tmp_path / 'logs'}\n{report}"
    assert not chaos.known.hits, "regressions: " + ", ".join(sorted(chaos.known.hits))
