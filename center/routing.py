"""Pure routing: which agents a rule's runs go to, given what the center knows of them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from center.rules import Rule, parse_selector
from protocol.vocabulary import AgentStatus

AGENT_PENDING, AGENT_ENABLED = AgentStatus.PENDING, AgentStatus.ENABLED
AGENT_UNREACHABLE, AGENT_DELETED = AgentStatus.UNREACHABLE, AgentStatus.DELETED
APPROVED = frozenset({AGENT_ENABLED, AGENT_UNREACHABLE})


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentInfo:
    """An `agents` row as the center needs it."""

    id: int
    name: str
    ip: str
    port: int
    status: int
    gid: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    cpu_pct: float = 0.0
    mem_pct: float = 0.0
    load1: float = 0.0
    allowed_users: tuple[str, ...] = ()  # the agent's policy: empty = any user but root
    allow_root: bool = False
    key_hash: str = ""  # of the key it registered with; "" until one is bound
    drain: bool = False  # an operator drains it: no new placements or strategy runs
    refusing: str = ""  # why it refuses new work (its own limits, from its heartbeat)

    @property
    def approved(self) -> bool:
        return self.status in APPROVED

    @property
    def takes_work(self) -> bool:
        """Whether strategies may send it new runs or instances."""
        return not self.drain and not self.refusing

    def permits(self, run_user: str) -> bool:
        """Whether its policy lets a rule run as `run_user` (the agent checks the user exists)."""
        if run_user == "root":
            return self.allow_root
        return not run_user or not self.allowed_users or run_user in self.allowed_users

    @property
    def address(self) -> tuple[str, int]:
        return (self.ip, self.port)


def _usable(rule: Rule, agent: AgentInfo | None) -> bool:
    return agent is not None and agent.approved and agent.permits(rule.run_user)


def listed_targets(rule: Rule, agents: Mapping[int, AgentInfo]) -> list[int]:
    """The original's routing: every approved agent listed for the rule in crontab_agent."""
    return [aid for aid in rule.agents if _usable(rule, agents.get(aid))]


def refusing(rule: Rule, agents: Mapping[int, AgentInfo]) -> list[str]:
    """Names of approved agents the rule could use but whose policy refuses its run_user."""
    pool = rule.agents or tuple(a.id for a in agents.values() if a.gid == rule.gid)
    return sorted(
        agents[aid].name
        for aid in pool
        if aid in agents and agents[aid].approved and not agents[aid].permits(rule.run_user)
    )


def planning_notice(rule: Rule, agents: Mapping[int, AgentInfo], chosen: int) -> str:
    """Why a valid rule runs on fewer agents than asked, for `crontab.notice` ("" if none)."""
    refused = refusing(rule, agents)
    if refused:
        return (
            f"run_user {rule.run_user!r} is refused by the policy of agent(s) "
            f"{', '.join(refused)[:300]}"
        )
    if not chosen:
        return "no approved agent to run it (list agents, or give the group approved agents)"
    return ""


def candidates(rule: Rule, agents: Mapping[int, AgentInfo]) -> list[int]:
    """Agents a strategy may choose from: the listed ones, else the rule's group; by label."""
    wanted = parse_selector(rule.selector)
    pool = rule.agents or tuple(a.id for a in agents.values() if a.gid == rule.gid)
    return sorted(
        aid
        for aid in pool
        if _usable(rule, agents.get(aid))
        and all(agents[aid].labels.get(k) == v for k, v in wanted.items())
    )


def load_score(agent: AgentInfo) -> float:
    """Lower is better: CPU and memory in percent, the load average weighted like them."""
    return agent.cpu_pct + agent.mem_pct + 10.0 * agent.load1


def _weight(task_id: int, shard: int, aid: int) -> bytes:
    return hashlib.blake2b(f"{task_id}/{shard}/{aid}".encode(), digest_size=8).digest()


def preference(
    rule: Rule, shard: int, pool: list[int], agents: Mapping[int, AgentInfo], turn: int
) -> list[int]:
    """Candidates in the order the rule's strategy prefers them: first choice, then failovers."""
    if rule.routing == "least_loaded":
        return sorted(pool, key=lambda aid: (load_score(agents[aid]), aid))
    if rule.routing == "hash":
        # Rendezvous hashing: a rule keeps its agent when others come and go.
        return sorted(pool, key=lambda aid: _weight(rule.id, shard, aid), reverse=True)
    start = (turn + shard) % len(pool)  # round_robin
    return pool[start:] + pool[:start]


def choose(
    rule: Rule, agents: Mapping[int, AgentInfo], online: Callable[[int], bool], turn: int = 0
) -> list[tuple[int, int]]:
    """(shard, agent) for each run a fire makes: all listed agents, or one agent per shard."""
    if rule.routing == "listed":
        return [(0, aid) for aid in listed_targets(rule, agents)]
    pool = [aid for aid in candidates(rule, agents) if agents[aid].takes_work]
    if not pool:
        return []
    shards = range(rule.shard_total) if rule.shard_total > 0 else range(1)
    return [
        (shard, pick(rule, preference(rule, shard, pool, agents, turn), online)) for shard in shards
    ]


def pick(rule: Rule, ordered: list[int], online: Callable[[int], bool]) -> int:
    """The first choice, or with failover the first one that is online (else still the first)."""
    if rule.failover:
        for aid in ordered:
            if online(aid):
                return aid
    return ordered[0]


def failover_target(
    rule: Rule,
    shard: int,
    current: int,
    agents: Mapping[int, AgentInfo],
    online: Callable[[int], bool],
    *,
    turn: int = 0,
) -> int | None:
    """Where a run waiting for an offline agent may go instead, if its rule allows."""
    if rule.routing == "listed" or not rule.failover:
        return None
    pool = [aid for aid in candidates(rule, agents) if agents[aid].takes_work]
    for aid in preference(rule, shard, pool, agents, turn) if pool else []:
        if aid != current and online(aid):
            return aid
    return None


@dataclass(frozen=True, slots=True)
class Reachability:
    """An agent status the link state calls for: `from_status` -> `to_status`."""

    aid: int
    from_status: int
    to_status: int
    down_s: float = 0.0


def reachability_changes(
    links: Mapping[int, tuple[bool, float]],
    agents: Mapping[int, AgentInfo],
    *,
    now_mono: float,
    offline_after_s: float,
) -> list[Reachability]:
    """Pure. `links`: aid -> (connected, down since, monotonic). An unreachable agent whose
    link is back is enabled again; an enabled one down longer than `offline_after_s` is
    unreachable."""
    out = []
    for aid, (connected, down_since) in links.items():
        info = agents.get(aid)
        status = info.status if info is not None else None
        if status == AGENT_UNREACHABLE and connected:
            out.append(Reachability(aid, AGENT_UNREACHABLE, AGENT_ENABLED))
        elif status == AGENT_ENABLED and not connected and now_mono - down_since > offline_after_s:
            out.append(Reachability(aid, AGENT_ENABLED, AGENT_UNREACHABLE, now_mono - down_since))
    return out
