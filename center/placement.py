"""Pure: where the instances of a fleet service run. A daemon rule with a strategy keeps
`process_num` instances in total over its eligible agents, at most `max_per_agent` on each;
instances stay where they are while their agent keeps them, and the missing ones go to the
best agent that takes new work (counting what was just placed there, not only its heartbeat)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from center.routing import AgentInfo, candidates, load_score
from center.rules import Rule

PARTITION_MARGIN_S = 2.0  # a ping interval and the agent's check, with room to spare


@dataclass(frozen=True, slots=True)
class Slot:
    """One instance of a service: its agent (0 when unplaced, `reason` says why)."""

    instance: int
    aid: int
    reason: str = ""
    since_us: int = 0


@dataclass(frozen=True, slots=True)
class Host:
    """An agent as placement sees it now."""

    aid: int
    down_s: float = 0.0  # 0 while its link is up; else how long it has been down
    why_not: str = ""  # why it takes no new instances (draining, refusing, offline); "" = takes

    @property
    def takes_new(self) -> bool:
        return not self.why_not


def keeps(rule: Rule, host: Host | None, offline_after_s: float) -> bool:
    """Whether instances placed on `host` stay there: its link is up, or down for less than
    the bound: the center's offline delay, or for "at most N" (`partition_stop_s`) the time
    the cut-off agent takes to stop them itself, counted from a frame later than the center's
    last (a ping), plus their kill grace and a margin."""
    if host is None:
        return False
    bound_s = offline_after_s
    if rule.partition_stop_s:
        bound_s = max(bound_s, rule.partition_stop_s + rule.kill_grace_s + PARTITION_MARGIN_S)
    return host.down_s <= bound_s


def _weight(task_id: int, instance: int, aid: int) -> bytes:
    return hashlib.blake2b(f"{task_id}#{instance}/{aid}".encode(), digest_size=8).digest()


def _order(
    rule: Rule,
    instance: int,
    *,
    pool: list[int],
    agents: Mapping[int, AgentInfo],
    counts: Mapping[int, int],
    mine: Mapping[int, int],
    turn: int,
) -> list[int]:
    """Agents in the order the rule's strategy prefers them for one new instance; least loaded
    spreads the service's own instances first, then counts every service's, then the load."""
    if rule.routing == "hash":  # rendezvous: an instance keeps its agent as others come and go
        return sorted(pool, key=lambda aid: _weight(rule.id, instance, aid), reverse=True)
    if rule.routing == "round_robin":
        start = (turn + rule.id + instance) % len(pool)  # rules start apart, not all on one
        return pool[start:] + pool[:start]
    return sorted(
        pool,
        key=lambda aid: (mine.get(aid, 0), counts.get(aid, 0), load_score(agents[aid]), aid),
    )


def _unplaced_reason(
    rule: Rule, pool: list[int], hosts: Mapping[int, Host], agents: Mapping[int, AgentInfo]
) -> str:
    if not pool:
        return (
            "no eligible agent: none approved in its group (or listed) that matches its "
            f"selector and allows run_user {rule.run_user or '(the agent’s own)'!r}"
        )
    refusing = [
        f"{agents[aid].name}: {hosts[aid].why_not if aid in hosts else 'not connected'}"
        for aid in pool
        if aid not in hosts or not hosts[aid].takes_new
    ]
    if len(refusing) == len(pool):
        return "no eligible agent takes new work (" + "; ".join(refusing[:3])[:150] + ")"
    cap = rule.max_per_agent
    return f"max_per_agent {cap} × {len(pool) - len(refusing)} agents taking work is full"


def place_service(
    rule: Rule,
    current: Mapping[int, Slot],
    hosts: Mapping[int, Host],
    agents: Mapping[int, AgentInfo],
    counts: MutableMapping[int, int],
    *,
    now_us: int,
    offline_after_s: float,
    turn: int = 0,
) -> list[Slot]:
    """The service's slots, instance 0 … process_num-1. `counts` (agent -> instances of every
    service placed there, recent ones included) is updated with what this call places."""
    pool = candidates(rule, agents)
    eligible = set(pool)
    cap = rule.max_per_agent or rule.process_num
    per_agent: Counter[int] = Counter()
    slots: dict[int, Slot] = {}
    for instance in range(rule.process_num):
        slot = current.get(instance)
        if (
            slot is not None
            and slot.aid in eligible
            and keeps(rule, hosts.get(slot.aid), offline_after_s)
            and per_agent[slot.aid] < cap
        ):
            slots[instance] = slot
            per_agent[slot.aid] += 1
    for instance in range(rule.process_num):
        if instance in slots:
            continue
        usable = [a for a in pool if a in hosts and hosts[a].takes_new and per_agent[a] < cap]
        if not usable:
            previous = current.get(instance)
            reason = _unplaced_reason(rule, pool, hosts, agents)
            unchanged = previous is not None and previous.aid == 0 and previous.reason == reason
            slots[instance] = (
                previous if unchanged and previous else Slot(instance, 0, reason, now_us)
            )
            continue
        aid = _order(
            rule, instance, pool=usable, agents=agents, counts=counts, mine=per_agent, turn=turn
        )[0]
        slots[instance] = Slot(instance, aid, "", now_us)
        per_agent[aid] += 1
        counts[aid] = counts.get(aid, 0) + 1
    return [slots[i] for i in sorted(slots)]


def spread_move(rule: Rule, slots: list[Slot], hosts: Mapping[int, Host]) -> tuple[int, int] | None:
    """Rebalancing, one step: (instance, to agent) that moves an instance from the fullest
    eligible agent to the emptiest one taking work, or None once they differ by at most one."""
    per_agent: Counter[int] = Counter(s.aid for s in slots if s.aid)
    takers = [aid for aid, host in hosts.items() if host.takes_new]
    for aid in takers:
        per_agent.setdefault(aid, 0)
    if not per_agent or not takers:
        return None
    fullest = max(per_agent, key=lambda aid: (per_agent[aid], aid))
    emptiest = min(takers, key=lambda aid: (per_agent[aid], aid))
    if per_agent[fullest] - per_agent[emptiest] <= 1:
        return None
    moving = max(s.instance for s in slots if s.aid == fullest)
    return moving, emptiest


def by_agent(slots_by_rule: Mapping[int, list[Slot]]) -> dict[int, dict[int, list[int]]]:
    """aid -> task_id -> instances placed there."""
    out: dict[int, dict[int, list[int]]] = {}
    for task_id, slots in slots_by_rule.items():
        for slot in slots:
            if slot.aid:
                out.setdefault(slot.aid, {}).setdefault(task_id, []).append(slot.instance)
    return out
