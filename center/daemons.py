"""Pure: which daemon rules each agent must keep running, and what changed since it was told."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from center.routing import AgentInfo, listed_targets
from center.rules import Rule, run_spec
from protocol.messages import RunSpec

Wanted = dict[int, dict[int, RunSpec]]  # aid -> task_id -> spec


def wanted_daemons(rules: Mapping[int, Rule], agents: Mapping[int, AgentInfo]) -> Wanted:
    """Every enabled, valid daemon rule on every approved agent listed for it."""
    out: Wanted = {aid: {} for aid, info in agents.items() if info.approved}
    for rule in rules.values():
        if rule.is_daemon and rule.enabled and not rule.error:
            spec = run_spec(rule)
            for aid in listed_targets(rule, agents):
                out[aid][rule.id] = spec
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
