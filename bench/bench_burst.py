"""Burst benchmark: N rules due in the same second, against 1 and 4 agents, and APScheduler 3.

Run: .venv/bin/python bench/bench_burst.py [N ...]   (default: 1000 10000 100000)
     .venv/bin/python bench/bench_burst.py --real-only   (the real-agent rows alone)
     .venv/bin/python bench/bench_burst.py --idle 900000 100000   (the burst on a rule book of
         a million: 900k more rules that fire once a year; the fake-agent rows alone)
Needs the `bench` extra for the APScheduler column: pip install -e '.[bench]'.

For each N and agent count: a real `unitedcron center` (its own process, uvloop, SQLite in a
temp dir) and fake agents in another process (the real protocol, no processes spawned) that
note when each exec arrives. Printed: lateness from the scheduled time to the agent receiving
the exec (p50, p99, max), fires missed, the center's CPU seconds and peak RSS. Then the same N
as coroutine jobs in APScheduler 3's AsyncIOScheduler (in-process, no network), for reference.
The last rows start 1 000 real processes through one real agent, for the lateness to the
exec instant: prepared ahead (forked as the user, held before exec, released at the second)
and, as the baseline in the same run, spawned at the second (UNITEDCRON_AGENT_PREPARE_MAX=0);
`prepared` says how many started from their prepared process (the agent's held_starts metric).
`bench_gate_release.py` prints the floor under these rows: the same gates released, no agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from _common import free_port, pct  # bench/ is on sys.path when run as a script
from sqlalchemy import func, insert, select, update

from center.store.db import create_engine, upgrade_database
from center.tables import agents, crontab, crontab_agent, task_process

SECRET = "bench-secret-0123456789abcdef"
ROOT = Path(__file__).resolve().parent
REAL_N = 1000
# Runs started from the process prepared for them (the rest were spawned at their second).
HELD_STARTS_PREPARED = 'unitedcron_agent_held_starts_total{how="prepared"}'
UNITEDCRON = str(Path(sys.executable).with_name("unitedcron"))


def fire_expr(at_s: int) -> str:
    t = time.gmtime(at_s)
    return f"{t.tm_sec} {t.tm_min} {t.tm_hour} * * *"


IDLE_RULE = "0 0 0 1 1 *"  # once a year, at new year: never within a run of this bench


async def seed(
    db_url: str, ports: list[int], n: int, at_s: int, execute: str, *, idle: int = 0
) -> None:
    engine = create_engine(db_url)
    now = time.time_ns() // 1000
    stamps = {"create_time": now, "update_time": now}
    async with engine.begin() as conn:
        for i, port in enumerate(ports, 1):
            await conn.execute(
                insert(agents).values(
                    id=i, name=f"agent-{i}", ip="127.0.0.1", port=port, status=1, **stamps
                )
            )
        rule = fire_expr(at_s)
        for start in range(0, n + idle, 20_000):
            ids = range(start + 1, min(n + idle, start + 20_000) + 1)
            await conn.execute(
                insert(crontab),
                [
                    {
                        "id": i,
                        "name": f"r{i}",
                        "rule": rule if i <= n else IDLE_RULE,
                        "execute": execute,
                        "run_user": "nobody",
                        **stamps,
                    }
                    for i in ids
                ],
            )
            await conn.execute(
                insert(crontab_agent), [{"task_id": i, "aid": (i % len(ports)) + 1} for i in ids]
            )
    await engine.dispose()


async def metric(port: int, name: str) -> float | None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\n\r\n")
        body = (await asyncio.wait_for(reader.read(), 5)).decode()
        writer.close()
    except (OSError, TimeoutError):
        return None
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def start_center(db_url: str, metrics_port: int, extra: dict[str, str]) -> Any:
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("UNITEDCRON_")}
        | {
            "UNITEDCRON_DB_URL": db_url,
            "UNITEDCRON_SECRET": SECRET,
            "UNITEDCRON_CENTER_LISTEN": f"127.0.0.1:{free_port()}",
            "UNITEDCRON_CENTER_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
            "UNITEDCRON_LOG_LEVEL": "warning",
            "UNITEDCRON_LOG_FORMAT": "json",
        }
        | extra
    )
    return await asyncio.create_subprocess_exec(
        UNITEDCRON,
        "center",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def wait_planned(metrics_port: int, n: int, deadline: float) -> bool:
    while time.time() < deadline:
        if (await metric(metrics_port, "unitedcron_rules_planned") or 0) >= n:
            return True
        await asyncio.sleep(0.2)
    return False


class Sampler:
    """Peak RSS of a process, sampled every 100 ms."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_mb = 0.0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                self.peak_mb = max(self.peak_mb, self.proc.memory_info().rss / 2**20)
            except psutil.Error:
                return
            await asyncio.sleep(0.1)

    def cpu_s(self) -> float:
        t = self.proc.cpu_times()
        return float(t.user + t.system)


async def burst(n: int, agent_count: int, tmp: Path, idle: int = 0) -> dict[str, Any]:
    db_url = f"sqlite+aiosqlite:///{tmp}/burst-{n}-{agent_count}.db"
    await upgrade_database(db_url)
    out = tmp / f"fake-{n}-{agent_count}.json"
    fakes = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "_fakeagents.py"),
        str(agent_count),
        SECRET,
        str(out),
        stdout=asyncio.subprocess.PIPE,
    )
    assert fakes.stdout is not None
    ports = json.loads(await fakes.stdout.readline())["ports"]
    await seed(db_url, ports, n, 0, "/bin/true", idle=idle)  # the time is set once seeding is done
    lead_s = 12 + n // 4000 + idle // 30_000  # a million rules load in about 25 s here
    at_s = int(time.time()) + lead_s
    await retime(db_url, n, at_s)
    metrics_port = free_port()
    # The fake agents speak plain text; the real-agent row below pays for TLS.
    center = await start_center(db_url, metrics_port, {"UNITEDCRON_INSECURE_PLAINTEXT": "true"})
    sampler = Sampler(center.pid)
    ready = await wait_planned(metrics_port, n + idle, at_s - 1.5)
    await asyncio.sleep(max(at_s - 1 - time.time(), 0))
    cpu0 = sampler.cpu_s()
    await asyncio.sleep(max(at_s + 5 + n / 20_000 - time.time(), 0))
    cpu = sampler.cpu_s() - cpu0
    for proc in (fakes, center):
        proc.send_signal(signal.SIGTERM)
    await asyncio.gather(fakes.wait(), center.wait())
    receipts = [r for agent in json.loads(out.read_text()) for r in agent]
    late = [(received_us - sched_us) / 1000 for _, sched_us, received_us in receipts]
    return {
        "n": n,
        "agents": agent_count,
        "ready": ready,
        "received": len(late),
        "p50": pct(late, 0.5),
        "p99": pct(late, 0.99),
        "max": max(late, default=float("nan")),
        "cpu_s": cpu,
        "rss_mb": sampler.peak_mb,
    }


async def retime(db_url: str, n: int, at_s: int) -> None:
    """Point the burst's rules at `at_s` (seeding a big book takes a while)."""
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.execute(update(crontab).where(crontab.c.id <= n).values(rule=fire_expr(at_s)))
    await engine.dispose()


async def aps_burst(n: int) -> dict[str, Any]:
    import logging

    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)  # one line per missed job
    at_s = int(time.time()) + 5 + n // 1000  # adding jobs is slow: give it time
    t = time.gmtime(at_s)
    late: list[float] = []
    done = asyncio.Event()

    async def job() -> None:
        late.append((time.time() - at_s) * 1000)
        if len(late) == n:
            done.set()

    scheduler = AsyncIOScheduler(timezone="UTC")
    trigger = CronTrigger(hour=t.tm_hour, minute=t.tm_min, second=t.tm_sec, timezone="UTC")
    for _ in range(n):
        scheduler.add_job(job, trigger)
    scheduler.start()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout=at_s + 60 - time.time())
    scheduler.shutdown(wait=False)
    return {
        "n": n,
        "received": len(late),
        "p50": pct(late, 0.5),
        "p99": pct(late, 0.99),
        "max": max(late, default=float("nan")),
    }


async def real_starts(n: int, tmp: Path, prepare_max: int, ahead_ms: int) -> dict[str, Any]:
    """One real agent running `/bin/true` as nobody: lateness to the process start (the
    exec instant). `prepare_max` 0: each spawned at its second (the baseline); `ahead_ms`:
    the center's send-ahead, and how early the agent may prepare."""
    db_url = f"sqlite+aiosqlite:///{tmp}/real-{n}-{prepare_max}-{ahead_ms}.db"
    await upgrade_database(db_url)
    reg_port, agent_port, metrics_port = free_port(), free_port(), free_port()
    agent_metrics_port = free_port()
    at_s = int(time.time()) + 20  # enrolment (TLS) takes seconds on a loaded machine
    await seed(db_url, [agent_port], n, at_s, "/bin/true")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITEDCRON_")} | {
        "UNITEDCRON_SECRET": SECRET,
        "UNITEDCRON_AGENT_LISTEN": f"127.0.0.1:{agent_port}",
        "UNITEDCRON_AGENT_CENTER": f"127.0.0.1:{reg_port}",
        "UNITEDCRON_AGENT_NAME": "agent-1",
        "UNITEDCRON_AGENT_STATE_DIR": str(tmp / f"agent-{n}-{prepare_max}-{ahead_ms}"),
        "UNITEDCRON_AGENT_PREPARE_MAX": str(prepare_max),
        "UNITEDCRON_AGENT_PREPARE_AHEAD_MS": str(ahead_ms),
        "UNITEDCRON_LOG_LEVEL": "warning",
        "UNITEDCRON_AGENT_METRICS_LISTEN": f"127.0.0.1:{agent_metrics_port}",
        "UNITEDCRON_AGENT_MAX_PROCESSES": str(n + 10),
    }
    agent_log = tmp / f"agent-{n}-{prepare_max}-{ahead_ms}.log"
    with agent_log.open("wb") as log_file:  # read back if the agent dies
        agent = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", env=env, stdout=log_file, stderr=log_file
        )
    center = await start_center(
        db_url,
        metrics_port,
        {
            "UNITEDCRON_CENTER_LISTEN": f"127.0.0.1:{reg_port}",
            "UNITEDCRON_CENTER_SEND_AHEAD_MS": str(ahead_ms),
        },
    )
    await wait_planned(metrics_port, n, at_s - 1)
    engine = create_engine(db_url)
    deadline = at_s + 60
    while time.time() < deadline:
        async with engine.connect() as conn:
            count = (
                await conn.execute(
                    select(func.count()).select_from(task_process).where(task_process.c.start > 0)
                )
            ).scalar() or 0
        if count >= n:
            break
        await asyncio.sleep(0.5)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(task_process.c.start, task_process.c.sched_us).where(
                    task_process.c.start > 0
                )
            )
        ).all()
    await engine.dispose()
    prepared = await metric(agent_metrics_port, HELD_STARTS_PREPARED)
    if agent.returncode is not None:
        tail = agent_log.read_text(errors="replace").splitlines()[-20:]
        print(f"agent exited early ({agent.returncode}):", *tail, sep="\n  ", file=sys.stderr)
    for proc in (agent, center):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    await asyncio.gather(agent.wait(), center.wait())
    late = [(r.start - r.sched_us) / 1000 for r in rows]
    return {
        "n": n,
        "started": len(late),
        "prepared": "-" if prepared is None else f"{prepared:.0f}",
        "p50": pct(late, 0.5),
        "p99": pct(late, 0.99),
        "max": max(late, default=float("nan")),
    }


async def main(sizes: list[int], idle: int = 0) -> None:
    print(
        f"python {sys.version.split()[0]}, {psutil.cpu_count()} cores; SQLite store; "
        "lateness = scheduled time -> agent receives the exec"
        + (f"; {idle} more rules in the book, idle" if idle else "")
    )
    print(
        f"{'N':>7} {'agents':>6} {'received':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'center CPU s':>12} {'RSS MB':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for agent_count in (1, 4):
                r = await burst(n, agent_count, Path(tmp), idle)
                note = "" if r["ready"] else "  (not all rules planned in time)"
                print(
                    f"{n:>7} {agent_count:>6} {r['received']:>9} {r['p50']:>8.1f} "
                    f"{r['p99']:>8.1f} {r['max']:>8.1f} {r['cpu_s']:>12.2f} "
                    f"{r['rss_mb']:>7.0f}{note}",
                    flush=True,
                )
        if idle:  # the other rows are the same as without idle rules
            return
        print("\nAPScheduler 3 AsyncIOScheduler, coroutine jobs, defaults (in-process, no network)")
        for n in sizes:
            try:
                r = await aps_burst(n)
            except ImportError:
                print("  not installed: pip install -e '.[bench]'")
                break
            print(
                f"{n:>7} {'-':>6} {r['received']:>9} {r['p50']:>8.1f} {r['p99']:>8.1f} "
                f"{r['max']:>8.1f}",
                flush=True,
            )
    await real_rows(REAL_N)


async def real_rows(n: int) -> None:
    """The same burst through one real agent, prepared ahead and (baseline) spawned at the
    second, in this run."""
    print(f"\nreal agent, {n} x /bin/true as nobody (setpriv): scheduled -> exec instant")
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'':>34} {'started':>9} {'prepared':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    rows = (
        ("prepared ahead (2 s send-ahead)", 2000, 2000),
        ("spawned at second (2 s, baseline)", 0, 2000),
        ("prepared ahead (5 s send-ahead)", 2000, 5000),
    )
    with tempfile.TemporaryDirectory() as tmp:
        for label, prepare_max, ahead_ms in rows:
            r = await real_starts(n, Path(tmp), prepare_max, ahead_ms)
            print(
                f"{label:>34} {r['started']:>9} {r['prepared']:>9} {r['p50']:>8.1f} "
                f"{r['p99']:>8.1f} {r['max']:>8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--real-only"]:
        asyncio.run(real_rows(REAL_N))
    elif args[:1] == ["--idle"]:
        asyncio.run(main([int(a) for a in args[2:]] or [100_000], idle=int(args[1])))
    else:
        asyncio.run(main([int(a) for a in args] or [1000, 10_000, 100_000]))
