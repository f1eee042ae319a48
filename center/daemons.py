"""Pure: which daemon rules each agent must keep running, and what changed since it was told."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from center.routing import AgentInfo, listed_targets
from center.rules import Rule, run_spec
from protocol.messages import RunSpec

Wanted = dict[int, dict[int, RunSpec]]  # aid -> task_id -> spec


Placed = Mapping[int, Mapping[int, list[int]]]  # aid -> task_id -> instances placed there


def wanted_daemons(
    rules: Mapping[int, Rule], agents: Mapping[int, AgentInfo], placed: Placed | None = None
) -> Wanted:
    """Every enabled, valid `listed` daemon rule on every approved agent listed for it, and
    each fleet service's instances where the placement put them."""
    out: Wanted = {aid: {} for aid, info in agents.items() if info.approved}
    for rule in rules.values():
        if rule.is_daemon and rule.enabled and not rule.error and not rule.is_service:
            spec = run_spec(rule)
            for aid in listed_targets(rule, agents):
                out[aid][rule.id] = spec
    specs: dict[int, RunSpec] = {}
    for aid, tasks in (placed or {}).items():
        for task_id, instances in tasks.items():
            service = rules.get(task_id)
            if aid not in out or service is None:
                continue
            spec = specs.get(task_id) or specs.setdefault(task_id, run_spec(service))
            out[aid][task_id] = replace(spec, instances=sorted(instances))
    return out


@dataclass(frozen=True, slots=True)
class DaemonChange:
    """What to tell one agent: specs new or changed, and rules to stop."""

    specs: list[RunSpec] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.specs or self.stopped)


def diff_daemons(told: Mapping[int, RunSpec], wanted: Mapping[int, RunSpec]) -> DaemonChange:
    """The change that turns what an agent was told into what it should run."""
    specs = [spec for task_id, spec in sorted(wanted.items()) if told.get(task_id) != spec]
    stopped = sorted(task_id for task_id in told if task_id not in wanted)
    return DaemonChange(specs, stopped)
