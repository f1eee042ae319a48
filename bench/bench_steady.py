"""Steady-state benchmark (issues 7, 18): N enabled rules on mixed schedules, over a window.

Run: .venv/bin/python bench/bench_steady.py [N] [--seconds S] [--agents K] [--mix busy|fleet]
                                            [--settle S2] [--profile FILE]
     (defaults: N = 100000 rules, S = 60 s, K = 4 fake agents, S2 = 5 s)

One job: what a center costs at rest with a big rule book, against the targets of issue 18:
up to 100k rules, center ≤ 5 % of one core (busy mix; fleet mix ≤ 3 %), RSS ≤ 500 MB; 1M
rules (fleet mix), every rule planned ≤ 30 s after the center's start, ≤ 10 %, ≤ 1.5 GB; no
missed fire. `--profile FILE` runs the center under bench/_profiled_center.py, which samples
its stacks over the window only (FILE: one line per stack; FILE.threads: CPU per thread).

A real `unitedcron center` (its own process, uvloop, SQLite in a temp dir) plans N rules
(most every minute or every 5 or 15 minutes at spread seconds, some every 10 s or every
second, some hourly or daily: no same-second burst, see bench_burst.py for that) for K fake
agents in another process
(bench/_fakeagents.py: the real protocol, no processes; each exec is noted as it arrives and
answered as a success at its time). After the warm-up (rules loaded, lease taken, first exec
received, then S2 seconds to settle) it measures S seconds: the center's CPU (% of one
core; of it, the kernel's share), its peak and end RSS (sampled every 0.5 s), the fires due
in the window (enumerated with center.cronexpr) against the execs the agents received for
them (missed, duplicates, lateness = receipt - scheduled: the center sends ahead, so negative
is early), the window's task_process rows by status, and the growth of task_process and of
the SQLite files. Prints figures, asserts nothing. A longer --settle measures a later
minute: the rules' first fires are behind it, and the tables the runs are written to are
bigger.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from _common import free_port, pct  # bench/ is on sys.path when run as a script
from sqlalchemy import func, insert, select

from center.cronexpr import parse_schedule
from center.store.db import create_engine, upgrade_database
from center.tables import agents, crontab, crontab_agent, task_process

SECRET = "bench-steady-secret-0123456789abcdef"
UNITEDCRON = str(Path(sys.executable).with_name("unitedcron"))
SETTLE_S = 5.0  # after the first exec: the first lookahead (10 s of fires) is written at once
TAIL_S = 3.0  # after the window: the last fires' reports reach the database
SAMPLE_S = 0.5


@dataclass(frozen=True)
class Targets:
    """Issue 18's targets: up to 100k rules, 5 % of a core (busy mix) or 3 % (fleet mix) and
    500 MB; a million rules (fleet mix), 10 %, 1.5 GB and every rule planned within 30 s."""

    cpu_pct: float
    rss_mb: float
    cold_start_s: float | None = None


def targets_for(n: int, mix: str) -> Targets:
    if n > 100_000:
        return Targets(10.0, 1500.0, 30.0)
    return Targets(3.0 if mix == "fleet" else 5.0, 500.0)


US = 1_000_000


@dataclass(frozen=True)
class Kind:
    """One kind of rule in the mix: its share of N, its period, and its k-th rule text."""

    label: str
    share: float
    period_s: int
    rule: Callable[[int], str]


# Seconds (and minutes, hours) spread by the rule's index: a steady flow, not bursts.
# "busy": a third of the rules every minute (810 fires/s at 100k); "fleet": mostly hourly and
# daily jobs, as on a real fleet (67 fires/s at 100k), for what holding the rules costs.
BUSY = (
    Kind("every minute", 0.30, 60, lambda k: f"{k % 60} * * * * *"),
    Kind("every 5 min", 0.25, 300, lambda k: f"{k % 60} {k // 60 % 5}/5 * * * *"),
    Kind("every 15 min", 0.20, 900, lambda k: f"{k % 60} {k // 60 % 15}/15 * * * *"),
    Kind("hourly", 0.15, 3600, lambda k: f"{k // 60 % 60} {k % 60} * * * *"),
    Kind("daily", 0.089, 86_400, lambda k: f"{k // 1440 % 60} {k // 24 % 60} {k % 24} * * *"),
    Kind("every 10 s", 0.01, 10, lambda k: f"{k % 10}/10 * * * * *"),
    Kind("every second", 0.001, 1, lambda k: "* * * * * *"),
)
FLEET = (
    Kind("every 5 min", 0.10, 300, lambda k: f"{k % 60} {k // 60 % 5}/5 * * * *"),
    Kind("every 15 min", 0.20, 900, lambda k: f"{k % 60} {k // 60 % 15}/15 * * * *"),
    Kind("hourly", 0.35, 3600, lambda k: f"{k // 60 % 60} {k % 60} * * * *"),
    Kind("daily", 0.349, 86_400, lambda k: f"{k // 1440 % 60} {k // 24 % 60} {k % 24} * * *"),
    Kind("every minute", 0.001, 60, lambda k: f"{k % 60} * * * * *"),
)
MIXES = {"busy": BUSY, "fleet": FLEET}


def mix_counts(n: int, mix: tuple[Kind, ...]) -> list[int]:
    counts = [int(kind.share * n) for kind in mix]
    counts[0] += n - sum(counts)
    return counts


def make_rules(n: int, mix: tuple[Kind, ...]) -> list[str]:
    """Rule texts; task id i is rules[i - 1]."""
    counts = mix_counts(n, mix)
    return [kind.rule(k) for kind, count in zip(mix, counts, strict=True) for k in range(count)]


# ---------------------------------------------------------------- processes


async def start_fakes(count: int, out: Path) -> tuple[Any, list[int]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("_fakeagents.py")),
        str(count),
        SECRET,
        str(out),
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # see start_center
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not line:
        raise RuntimeError("the fake agents exited before listening")
    return proc, list(json.loads(line)["ports"])


async def start_center(
    db_url: str, metrics_port: int, log_path: Path, profile: str | None = None
) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITEDCRON_")} | {
        "UNITEDCRON_DB_URL": db_url,
        "UNITEDCRON_SECRET": SECRET,
        "UNITEDCRON_INSECURE_PLAINTEXT": "true",  # bench/_fakeagents.py speaks plain text
        "UNITEDCRON_CENTER_LISTEN": f"127.0.0.1:{free_port()}",
        "UNITEDCRON_CENTER_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        "UNITEDCRON_LOG_LEVEL": "warning",
        "UNITEDCRON_LOG_FORMAT": "json",
    }
    command = [UNITEDCRON, "center"]
    if profile:  # the same center under cProfile, on from SIGUSR1 to SIGUSR2 (the window)
        command = [sys.executable, str(Path(__file__).with_name("_profiled_center.py")), profile]
    # Its own session: a Ctrl-C in the terminal reaches this script only, which then stops
    # the center (SIGTERM: it writes what it holds) before the fake agents.
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        return await asyncio.create_subprocess_exec(
            *command, env=env, stdout=log, stderr=log, start_new_session=True
        )


async def stop_process(proc: Any, wait_s: float = 20.0) -> None:
    """SIGTERM (the center then writes what it holds), SIGKILL if it takes too long."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), wait_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def seed(db_url: str, ports: list[int], rules: list[str]) -> None:
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
        for start in range(0, len(rules), 20_000):
            ids = range(start + 1, min(len(rules), start + 20_000) + 1)
            await conn.execute(
                insert(crontab),
                [
                    {
                        "id": i,
                        "name": f"r{i}",
                        "rule": rules[i - 1],
                        "execute": "/bin/true",
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


# ---------------------------------------------------------------- observing the center


async def scrape(port: int) -> dict[str, float]:
    """The center's /metrics as {sample name with labels: value}; {} if unreachable."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        body = (await asyncio.wait_for(reader.read(), 5)).decode()
        writer.close()
    except (OSError, TimeoutError):
        return {}
    samples = {}
    for line in body.split("\r\n\r\n", 1)[-1].splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


class Sampler:
    """The center's RSS every SAMPLE_S: peak since the last reset, and the latest."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_mb = self.last_mb = 0.0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                self.last_mb = self.proc.memory_info().rss / 2**20
            except psutil.Error:
                return
            self.peak_mb = max(self.peak_mb, self.last_mb)
            await asyncio.sleep(SAMPLE_S)

    def cpu_s(self) -> float:
        user, system = self.cpu_split_s()
        return user + system

    def cpu_split_s(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the center so far."""
        try:
            t = self.proc.cpu_times()
        except psutil.NoSuchProcess:
            raise RuntimeError("the center exited") from None
        return float(t.user), float(t.system)


def cpu_of(proc: Any) -> float:
    with contextlib.suppress(psutil.Error):
        t = psutil.Process(proc.pid).cpu_times()
        return float(t.user + t.system)
    return float("nan")


@dataclass
class Warmup:
    """From the center's start: rules planned (with CPU and RSS then), first exec, window."""

    planned_s: float = float("nan")
    planned_cpu_s: float = float("nan")
    planned_rss_mb: float = float("nan")
    first_exec_s: float = float("nan")
    window_cpu_s: float = float("nan")
    peak_rss_mb: float = float("nan")


@dataclass
class Rig:
    """The processes under test and where to look at them."""

    center: Any
    fakes: Any
    sampler: Sampler
    db_url: str
    db_path: Path
    metrics_port: int
    log_path: Path
    profiled: bool = False


async def warm_up(rig: Rig, n: int) -> Warmup:
    """Wait until the leader has planned all N rules and sent its first exec."""
    warm, sampler = Warmup(), rig.sampler
    t0 = sampler.proc.create_time()
    deadline = time.time() + 120 + n / 500
    while time.time() < deadline:
        if rig.center.returncode is not None:
            raise RuntimeError(f"the center exited ({rig.center.returncode}) during the warm-up")
        m = await scrape(rig.metrics_port)
        if math.isnan(warm.planned_s) and m.get("unitedcron_rules_planned", 0) >= n:
            warm.planned_s, warm.planned_cpu_s = time.time() - t0, sampler.cpu_s()
            warm.planned_rss_mb = sampler.proc.memory_info().rss / 2**20
        if math.isnan(warm.first_exec_s) and m.get("unitedcron_dispatched_runs_total", 0):
            warm.first_exec_s = time.time() - t0
        # both, in either order: the gauge is refreshed once per agents poll (every 1 s)
        if not (math.isnan(warm.planned_s) or math.isnan(warm.first_exec_s)):
            return warm
        await asyncio.sleep(0.2)
    raise TimeoutError(
        f"rules not all planned, or no exec sent, {deadline - t0:.0f} s after the center started"
    )


@dataclass
class Window:
    """What was sampled at the window's edges."""

    start_s: int
    end_s: int
    cpu_s: float = 0.0
    system_s: float = 0.0  # of cpu_s, in the kernel (SQLite's file reads and writes, sockets)
    elapsed_s: float = 0.0
    fakes_cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    end_rss_mb: float = 0.0
    rows: tuple[int, int] = (0, 0)
    db_mb: tuple[float, float] = (0.0, 0.0)
    write_s: dict[str, float] = field(default_factory=dict)
    load: tuple[float, float] = (0.0, 0.0)  # the 1-minute load average at the start and end


async def row_count(db_url: str) -> int:
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(task_process))).scalar()
    await engine.dispose()
    return int(count or 0)


def db_mb(db_path: Path) -> float:
    files = (db_path, db_path.with_name(db_path.name + "-wal"))
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def write_times(m: dict[str, float]) -> dict[str, float]:
    """Seconds spent in database writes so far, by kind (plan, reports, ...)."""
    prefix = 'unitedcron_store_write_seconds_sum{kind="'
    return {k[len(prefix) : -2]: v for k, v in m.items() if k.startswith(prefix)}


async def sleep_until(wall_s: float) -> None:
    await asyncio.sleep(max(wall_s - time.time(), 0))


async def measure(rig: Rig, seconds: int, warm: Warmup, settle_s: float) -> Window:
    """CPU, RSS, rows and file sizes at the edges of [start, start + seconds); the warm-up's
    CPU and peak RSS are what they are at the start."""
    sampler = rig.sampler
    start_s = int(time.time() + settle_s) + 1
    w = Window(start_s, start_s + seconds)
    await sleep_until(start_s)
    if rig.profiled:
        rig.center.send_signal(signal.SIGUSR1)
    t0, (user0, sys0), fcpu0 = time.monotonic(), sampler.cpu_split_s(), cpu_of(rig.fakes)
    cpu0 = user0 + sys0
    warm.window_cpu_s, warm.peak_rss_mb, sampler.peak_mb = cpu0, sampler.peak_mb, 0.0
    load0 = os.getloadavg()[0]
    write0 = write_times(await scrape(rig.metrics_port))
    rows0, mb0 = await row_count(rig.db_url), db_mb(rig.db_path)
    await sleep_until(w.end_s)
    if rig.profiled:
        rig.center.send_signal(signal.SIGUSR2)
    user1, sys1 = sampler.cpu_split_s()
    w.cpu_s, w.system_s = user1 + sys1 - cpu0, sys1 - sys0
    w.elapsed_s = time.monotonic() - t0
    w.fakes_cpu_s, w.peak_rss_mb = cpu_of(rig.fakes) - fcpu0, sampler.peak_mb
    w.end_rss_mb = sampler.proc.memory_info().rss / 2**20
    w.load = (load0, os.getloadavg()[0])
    write1 = write_times(await scrape(rig.metrics_port))
    w.write_s = {k: v - write0.get(k, 0.0) for k, v in write1.items()}
    w.rows, w.db_mb = (rows0, await row_count(rig.db_url)), (mb0, db_mb(rig.db_path))
    if rig.center.returncode is not None:
        raise RuntimeError(f"the center exited ({rig.center.returncode}) during the window")
    await sleep_until(w.end_s + TAIL_S)
    return w


# ---------------------------------------------------------------- figures


def due_in_window(rules: list[str], start_us: int, end_us: int) -> set[tuple[int, int]]:
    """(task_id, sched_us) of every fire in [start_us, end_us), from the rules' schedules."""
    memo: dict[str, list[int]] = {}
    due: set[tuple[int, int]] = set()
    for task_id, text in enumerate(rules, 1):
        fires = memo.get(text)
        if fires is None:
            fires, schedule = [], parse_schedule(text)
            at = schedule.next_fire_us(start_us - 1)
            while at is not None and at < end_us:
                fires.append(at)
                at = schedule.next_fire_us(at)
            memo[text] = fires
        due.update((task_id, s) for s in fires)
    return due


def fire_figures(receipts: list[list[int]], due: set[tuple[int, int]], w: Window) -> dict[str, Any]:
    """Missed, duplicates and lateness of the window's fires, from the agents' receipts."""
    lo, hi = w.start_s * US, w.end_s * US
    seen: Counter[tuple[int, int]] = Counter()
    late_ms = []
    for task_id, sched_us, received_us in receipts:
        if lo <= sched_us < hi:
            seen[task_id, sched_us] += 1
            if seen[task_id, sched_us] == 1:
                late_ms.append((received_us - sched_us) / 1000)
    return {
        "due": len(due),
        "received": len(due & seen.keys()),
        "missed": len(due - seen.keys()),
        "unexpected": len(seen.keys() - due),
        "duplicates": sum(c - 1 for c in seen.values()),
        "after_sched": sum(1 for ms in late_ms if ms > 0),
        "p50": pct(late_ms, 0.5),
        "p99": pct(late_ms, 0.99),
        "max": max(late_ms, default=float("nan")),
    }


async def window_statuses(db_url: str, w: Window) -> dict[str, int]:
    """The window's scheduled runs in task_process, by status (after the center stopped)."""
    engine = create_engine(db_url)
    c = task_process.c
    query = (
        select(c.status, func.count())
        .where(c.sched_us >= w.start_s * US, c.sched_us < w.end_s * US, c.trigger == "schedule")
        .group_by(c.status)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    await engine.dispose()
    return {str(status): int(count) for status, count in rows}


def log_events(log_path: Path) -> Counter[str]:
    """The center's warnings and errors (it logs at warning), by level and event."""
    events: Counter[str] = Counter()
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
            if entry.get("reason") != "shutdown":  # center.not_leading when we stop it
                events[f"{entry.get('level', '?')} {entry.get('event', '?')}"] += 1
        except (ValueError, AttributeError):
            events[f"(not json) {line[:80]}"] += 1
    return events


def row(label: str, figure: str, target: str = "", ok: bool | None = None) -> None:
    mark = "" if ok is None else ("ok" if ok else "MISSED TARGET")
    print(f"  {label:<26}{figure:<40}{target:<10}{mark}".rstrip())


def print_setup(n: int, k: int, seconds: int, mix: tuple[Kind, ...], settle_s: float) -> None:
    print(
        f"steady state: {n:,} enabled rules, {k} fake agents, window {seconds} s "
        f"(after the first exec + {settle_s:.0f} s)"
    )
    print(
        f"python {sys.version.split()[0]}, {psutil.cpu_count()} cores, "
        f"{platform.machine()} {platform.system()} {platform.release()}; SQLite (WAL) store"
    )
    print(f"\n{'mix':<14} {'rules':>8} {'fires/s':>8}   example rule (sec min hour dom mon dow)")
    total = 0.0
    for kind, count in zip(mix, mix_counts(n, mix), strict=True):
        rate, total = count / kind.period_s, total + count / kind.period_s
        print(f"{kind.label:<14} {count:>8,} {rate:>8.1f}   {kind.rule(count // 2)}")
    print(f"{'total':<14} {n:>8,} {total:>8.1f}", flush=True)


def print_warmup(warm: Warmup, goal: Targets) -> None:
    print("\nwarm-up from the center's start: loading rules, taking the lease, first plans")
    cold = goal.cold_start_s
    row(
        "all rules planned",
        f"after {warm.planned_s:.1f} s, CPU {warm.planned_cpu_s:.2f} s, "
        f"RSS {warm.planned_rss_mb:.0f} MB",
        "" if cold is None else f"≤ {cold:.0f} s",
        None if cold is None else warm.planned_s <= cold,
    )
    row("first exec sent", f"after {warm.first_exec_s:.1f} s")
    row(
        "up to the window",
        f"CPU {warm.window_cpu_s:.2f} s, peak RSS {warm.peak_rss_mb:.0f} MB",
        f"≤ {goal.rss_mb:.0f} MB",
        warm.peak_rss_mb <= goal.rss_mb,
    )


def print_window(w: Window, fires: dict[str, Any], statuses: dict[str, int], goal: Targets) -> None:
    cpu_pct, rows = 100 * w.cpu_s / w.elapsed_s, w.rows[1] - w.rows[0]
    start = time.strftime("%H:%M:%S", time.gmtime(w.start_s))
    print(f"\nsteady window: {w.elapsed_s:.1f} s from {start} UTC{'':<29}target")
    row(
        "center CPU",
        f"{cpu_pct:.1f} % of one core ({w.cpu_s:.2f} s)",
        f"≤ {goal.cpu_pct:.0f} %",
        cpu_pct <= goal.cpu_pct,
    )
    row(
        "center RSS peak / end",
        f"{w.peak_rss_mb:.0f} / {w.end_rss_mb:.0f} MB",
        f"≤ {goal.rss_mb:.0f} MB",
        w.peak_rss_mb <= goal.rss_mb,
    )
    row("", f"(system {w.system_s:.2f} s, user {w.cpu_s - w.system_s:.2f} s)")
    row("fires due", f"{fires['due']:,} ({fires['due'] / w.elapsed_s:,.1f}/s)")
    row("received by the agents", f"{fires['received']:,}")
    row("missed", f"{fires['missed']:,}", "0", fires["missed"] == 0)
    row("duplicates / not due", f"{fires['duplicates']:,} / {fires['unexpected']:,}")
    row("lateness p50/p99/max", f"{fires['p50']:.1f} / {fires['p99']:.1f} / {fires['max']:.1f} ms")
    row("", "(receipt - scheduled; < 0: ahead of time)")
    row("arrived after their time", f"{fires['after_sched']:,}")
    row("window runs by status", ", ".join(f"{k} {v:,}" for k, v in sorted(statuses.items())))
    row("task_process rows", f"{rows:+,} ({rows / w.elapsed_s:,.1f}/s), {w.rows[1]:,} in all")
    row("SQLite db + wal", f"{w.db_mb[1] - w.db_mb[0]:+.1f} MB, {w.db_mb[1]:.1f} MB in all")
    writes = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(w.write_s.items()))
    row("center db write time", writes or "-")
    row("fake agents CPU", f"{100 * w.fakes_cpu_s / w.elapsed_s:.1f} % of one core")
    row("load average (1 min)", f"{w.load[0]:.2f} at the start, {w.load[1]:.2f} at the end")
    row("", "(a shared machine: other work competes for its cores)")


# ---------------------------------------------------------------- the run


async def observe(rig: Rig, n: int, seconds: int, settle_s: float) -> tuple[Warmup, Window]:
    try:
        warm = await warm_up(rig, n)
        return warm, await measure(rig, seconds, warm, settle_s)
    except (RuntimeError, TimeoutError):
        tail = rig.log_path.read_text(errors="replace").splitlines()[-20:]
        print("center log (warnings and errors), last lines:", *tail, sep="\n  ", file=sys.stderr)
        raise
    finally:
        rig.sampler.task.cancel()


async def run(args: argparse.Namespace, tmp: Path) -> None:
    n, seconds, k, mix, profile = args.n, args.seconds, args.agents, MIXES[args.mix], args.profile
    rules = make_rules(n, mix)
    db_path = tmp / "steady.db"
    db_url = f"sqlite+aiosqlite:///{db_path}"
    await upgrade_database(db_url)
    async with contextlib.AsyncExitStack() as stack:  # both stopped on any way out
        fakes, ports = await start_fakes(k, tmp / "receipts.json")
        stack.push_async_callback(stop_process, fakes)
        await seed(db_url, ports, rules)
        metrics_port = free_port()
        log_path = tmp / "center.log"
        center = await start_center(db_url, metrics_port, log_path, profile)
        stack.push_async_callback(stop_process, center)  # stopped first: it flushes reports
        rig = Rig(
            center,
            fakes,
            Sampler(center.pid),
            db_url,
            db_path,
            metrics_port,
            log_path,
            bool(profile),
        )
        warm, w = await observe(rig, n, seconds, args.settle)
    goal = targets_for(n, args.mix)
    print_warmup(warm, goal)
    receipts = [r for agent in json.loads((tmp / "receipts.json").read_text()) for r in agent]
    due = due_in_window(rules, w.start_s * US, w.end_s * US)
    print_window(w, fire_figures(receipts, due, w), await window_statuses(db_url, w), goal)
    events = log_events(log_path)
    print(
        "\ncenter warnings and errors: "
        + (", ".join(f"{e} ×{c}" for e, c in events.most_common(8)) or "none"),
        flush=True,
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("n", type=int, nargs="?", default=100_000, help="rules (100000)")
    parser.add_argument("--seconds", type=int, default=60, help="window length (60)")
    parser.add_argument("--agents", type=int, default=4, help="fake agents (4)")
    parser.add_argument(
        "--settle", type=float, default=SETTLE_S, help="seconds from the first exec to the window"
    )
    parser.add_argument("--mix", choices=sorted(MIXES), default="busy", help="schedules (busy)")
    parser.add_argument(
        "--profile", metavar="FILE", help="sample the center's stacks over the window into FILE"
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.seconds < 1 or args.agents < 1:
        parser.error("N, --seconds and --agents must be at least 1")
    if not args.settle >= 0:  # also refuses nan: the window would start before it is measured
        parser.error(f"--settle: {args.settle} is not a number of seconds ≥ 0")
    return args


async def main(argv: list[str]) -> None:
    args = parse_args(argv)
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    mix = MIXES[args.mix]
    print_setup(args.n, args.agents, args.seconds, mix, args.settle)
    with tempfile.TemporaryDirectory(prefix="bench-steady-") as tmp:
        await run(args, Path(tmp))


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1:]))
    except KeyboardInterrupt:  # the center and the fake agents are stopped by now
        sys.exit(130)
    except asyncio.CancelledError:  # SIGTERM, likewise
        sys.exit(143)
