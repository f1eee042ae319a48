"""Fleet services' placement (issue 15): the leader's work to place every instance of N service
rules over K agents, and to re-place after D agents drop at once.

Run: .venv/bin/python bench/bench_placement.py [N] [--agents K] [--drop D]
     (defaults: N = 10000 rules, K = 500 agents, D = 50)

The rules are daemon rules with a strategy (least_loaded, round_robin, hash in turn), 1 to 8
instances each, half with max_per_agent 2, in 10 groups of agents. It times, in one process
and with the CPU time of the process (`time.process_time`), what `center.fleet.Fleet.step`
does per rule: `place_service` with the shared counts of what was just placed, then
`by_agent` for the agents' wanted sets:
  * the first, full placement from nothing;
  * placing everything again with nothing changed, and what a 0.5 s fleet tick costs at rest
    (it places nothing then: it compares the agents' signature and the rules' versions);
  * the re-placement after D agents are gone (their instances placed elsewhere).
Side by side, the baseline measured in the same run: `wanted_daemons` for the same rules as
`listed` daemons on every agent of their group (the model before fleet services). Prints
figures, asserts nothing; the network (telling agents) is not in it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from center.daemons import wanted_daemons
from center.placement import Host, Slot, by_agent, place_service
from center.routing import AgentInfo
from center.rules import Rule

GROUPS = 10
STRATEGIES = ("least_loaded", "round_robin", "hash")


def _agents(count: int) -> dict[int, AgentInfo]:
    return {
        aid: AgentInfo(
            id=aid,
            name=f"a{aid}",
            ip="",
            port=0,
            status=1,
            gid=aid % GROUPS + 1,
            cpu_pct=float(aid % 50),
            mem_pct=float(aid % 30),
            load1=(aid % 7) / 4,
        )
        for aid in range(1, count + 1)
    }


def _rules(count: int) -> dict[int, Rule]:
    return {
        task_id: Rule(
            id=task_id,
            gid=task_id % GROUPS + 1,
            rule="",
            execute="/bin/consumer",
            is_daemon=True,
            routing=STRATEGIES[task_id % 3],
            process_num=task_id % 8 + 1,
            max_per_agent=2 if task_id % 2 else 0,
        )
        for task_id in range(1, count + 1)
    }


def _place_all(
    rules: dict[int, Rule],
    agents: dict[int, AgentInfo],
    hosts: dict[int, Host],
    slots: dict[int, list[Slot]],
    only: set[int] | None = None,
) -> tuple[dict[int, list[Slot]], int]:
    counts: dict[int, int] = {}
    out, moved = dict(slots), 0
    for task_id, rule in rules.items():
        if only is not None and task_id not in only:
            continue
        current = {s.instance: s for s in slots.get(task_id, [])}
        placed = place_service(rule, current, hosts, agents, counts, now_us=1, offline_after_s=2)
        moved += sum(1 for s in placed if current.get(s.instance, s).aid != s.aid)
        out[task_id] = placed
    by_agent(out)
    return out, moved


def _idle_tick(rules: dict[int, Rule], hosts: dict[int, Host]) -> int:
    """What `Fleet.step` does when nothing changed: the agents' signature and rule versions."""
    signature = tuple(sorted((aid, h.why_not, h.down_s == 0) for aid, h in hosts.items()))
    versions = {tid: r.update_time for tid, r in rules.items() if r.is_service and r.enabled}
    return len(signature) + len(versions)


def _timed(work: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rules", type=int, nargs="?", default=10_000)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--drop", type=int, default=50)
    args = parser.parse_args()
    agents, rules = _agents(args.agents), _rules(args.rules)
    hosts = {aid: Host(aid) for aid in agents}
    instances = sum(r.process_num for r in rules.values())
    (slots, _), wall, cpu = _timed(lambda: _place_all(rules, agents, hosts, {}))
    unplaced = sum(1 for s in (x for v in slots.values() for x in v) if not s.aid)
    print(f"{args.rules} services, {instances} instances, {args.agents} agents")
    print(f"{'step':<34}{'wall s':>9}{'cpu s':>9}   notes")
    print(f"{'first placement':<34}{wall:>9.3f}{cpu:>9.3f}   unplaced {unplaced}")
    _, wall, cpu = _timed(lambda: _place_all(rules, agents, hosts, slots))
    print(f"{'placing all again, nothing changed':<34}{wall:>9.3f}{cpu:>9.3f}")
    _, wall, cpu = _timed(lambda: _idle_tick(rules, hosts))
    print(f"{'a fleet tick at rest':<34}{wall:>9.3f}{cpu:>9.3f}   what Fleet.step checks")
    gone = set(list(agents)[: args.drop])
    alive = {aid: h for aid, h in hosts.items() if aid not in gone}
    # What Fleet.step places then: the services with an instance on a dropped agent.
    touched = {t for t, v in slots.items() if any(s.aid in gone for s in v)}
    (_, moved), wall, cpu = _timed(lambda: _place_all(rules, agents, alive, slots, touched))
    print(f"{f'after {args.drop} agents drop':<34}{wall:>9.3f}{cpu:>9.3f}   moved {moved}")
    listed = {
        tid: Rule(
            **{
                **{
                    f: getattr(r, f)
                    for f in ("id", "gid", "rule", "execute", "is_daemon", "process_num")
                },
                "routing": "listed",
                "agents": tuple(a for a, i in agents.items() if i.gid == r.gid),
            }
        )
        for tid, r in rules.items()
    }
    _, wall, cpu = _timed(lambda: wanted_daemons(listed, agents))
    print(
        f"{'baseline: listed wanted_daemons':<34}{wall:>9.3f}{cpu:>9.3f}   every agent of the group"
    )


if __name__ == "__main__":
    main()
