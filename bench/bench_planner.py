"""Planner benchmark: 10k and 100k rules: build, a same-second burst, a steady minute.

Run: .venv/bin/python bench/bench_planner.py
Prints figures only; nothing here asserts a target.
"""

from __future__ import annotations

import gc
import os
import random
import time

import psutil

from center.cronexpr import parse_schedule
from center.planner import Planner
from center.routing import AgentInfo, listed_targets
from center.rules import Rule
from center.runs import plan_run, planned_row

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000
TICK_US = 50_000
MIXED = [
    "* * * * * *",
    "*/5 * * * * *",
    "*/10 * * * * *",
    "*/30 * * * * *",
    "0 * * * * *",
    "* * * * *",
    "*/5 * * * *",
    "0 * * * *",
    "15 3 * * *",
    "@every 7s",
    "@every 90s",
    "0 0 * * 1-5",
    "30 */2 * * *",
    "0 12 1 * *",
    "*/15 9-17 * * mon-fri",
]


def _proc() -> psutil.Process:
    return psutil.Process(os.getpid())


def _cpu_s() -> float:
    t = _proc().cpu_times()
    return float(t.user + t.system)


def _rss_mb() -> float:
    return _proc().memory_info().rss / 2**20


def build(n: int, exprs: list[str]) -> tuple[Planner, float, float]:
    gc.collect()
    rss0, t0 = _rss_mb(), time.perf_counter()
    planner = Planner()
    rng = random.Random(n)
    for task_id in range(1, n + 1):
        planner.set_rule(task_id, parse_schedule(rng.choice(exprs)), T0 - 1)
    return planner, time.perf_counter() - t0, _rss_mb() - rss0


def burst(n: int) -> None:
    """All N rules due in the same second: the planner's share of the p99 budget."""
    planner, build_s, rss_mb = build(n, ["0 * * * * *"])
    agents = {1: AgentInfo(id=1, name="a", ip="127.0.0.1", port=1, status=1)}
    rule = Rule(id=1, rule="0 * * * * *", execute="/bin/true", agents=(1,))
    t0 = time.perf_counter()
    fires = planner.due(T0)
    t1 = time.perf_counter()
    runs = [
        plan_run(f.task_id, f.sched_us, aid) for f in fires for aid in listed_targets(rule, agents)
    ]
    rows = [planned_row(r, 1, T0) for r in runs]
    t2 = time.perf_counter()
    print(
        f"burst   {n:>7,} rules  build {build_s:6.2f} s  +{rss_mb:6.1f} MB RSS   "
        f"due() {1000 * (t1 - t0):7.1f} ms   route+rows {1000 * (t2 - t1):7.1f} ms   "
        f"fires {len(fires):,}  rows {len(rows):,}"
    )


def steady(n: int, seconds: int = 60) -> None:
    """N rules on mixed schedules, ticked every 50 ms for a simulated minute."""
    planner, build_s, rss_mb = build(n, MIXED)
    cpu0, fires = _cpu_s(), 0
    now = T0
    worst_ms = 0.0
    for _ in range(seconds * S // TICK_US):
        now += TICK_US
        t0 = time.perf_counter()
        fires += len(planner.due(now + S))
        worst_ms = max(worst_ms, 1000 * (time.perf_counter() - t0))
    cpu = _cpu_s() - cpu0
    print(
        f"steady  {n:>7,} rules  build {build_s:6.2f} s  +{rss_mb:6.1f} MB RSS   "
        f"{fires / seconds:9,.0f} fires/s   planner CPU {100 * cpu / seconds:5.2f} % of a core   "
        f"worst tick {worst_ms:6.1f} ms   process RSS {_rss_mb():6.1f} MB"
    )


def main() -> None:
    print(
        f"python {os.sys.version.split()[0]}, {psutil.cpu_count()} cores; "
        f"planner alone (no network, no database)"
    )
    for n in (10_000, 100_000):
        burst(n)
    for n in (10_000, 100_000):
        steady(n)


if __name__ == "__main__":
    main()
