"""A flow run's nodes as the admin shows them (pure): each node's state from its runs, computed
by the center's own rules (center.dag), with the runs that count and why a node was skipped."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from center.dag import RUNNING, NodeRun, generation_of, node_outcomes
from protocol import statuses

PENDING = "pending"  # no run in the current generation yet: its parents have not let it go


@dataclass(frozen=True, slots=True)
class NodeState:
    task_id: int
    name: str
    join: str
    state: str  # a run status, "running" while any run goes on, or "pending"
    reason: str = ""  # why it was skipped, or how its worst run ended
    generation: int = 0  # re-runs from this node (or one before it) so far
    runs: tuple[Mapping[str, Any], ...] = ()  # its runs in the current generation, oldest first
    earlier_runs: int = 0  # runs of earlier generations (history of re-runs)
    newest_run_id: int = 0  # task_process.id of its newest counted run; 0 when none

    def as_dict(self, *, with_runs: bool) -> dict[str, Any]:
        out = {
            "task_id": self.task_id,
            "name": self.name,
            "join": self.join,
            "state": self.state,
            "reason": self.reason,
            "generation": self.generation,
            "earlier_runs": self.earlier_runs,
            "newest_run_id": self.newest_run_id,
        }
        return out | ({"runs": [dict(r) for r in self.runs]} if with_runs else {})


@dataclass(frozen=True, slots=True)
class FlowView:
    """What is needed of a flow run and its workflow to compute its nodes."""

    workflow_id: int
    sched_us: int
    reruns: str = "{}"  # the JSON column: {task_id: generation}
    nodes: Mapping[int, str] = field(default_factory=dict)  # task id -> join
    names: Mapping[int, str] = field(default_factory=dict)


def generations(reruns: str) -> dict[int, int]:
    """The `reruns` column read as {task_id: generation}; anything unreadable counts as none."""
    try:
        value = json.loads(reruns or "{}")
        return {int(k): int(v) for k, v in value.items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def node_states(flow: FlowView, rows: Sequence[Mapping[str, Any]]) -> list[NodeState]:
    """Every node of the workflow, plus any node that has runs in this flow run although the
    workflow no longer lists it, with its state in the current generation."""
    gens = generations(flow.reruns)
    by_node: dict[int, list[tuple[int, Mapping[str, Any]]]] = {}
    for row in rows:
        gen = generation_of(flow.workflow_id, flow.sched_us, int(row["sched_us"]))
        by_node.setdefault(int(row["task_id"]), []).append((gen, row))
    runs = [
        NodeRun(t, str(r["status"]), int(r["attempt"]), str(r["first_runid"]), g)
        for t, found in by_node.items()
        for g, r in found
    ]
    outcomes = node_outcomes(runs, gens)
    out = []
    for task_id in sorted(set(flow.nodes) | set(by_node)):
        gen = gens.get(task_id, 0)
        current = tuple(r for g, r in by_node.get(task_id, []) if g == gen)
        state = outcomes.get(task_id, PENDING)
        out.append(
            NodeState(
                task_id=task_id,
                name=flow.names.get(task_id, ""),
                join=flow.nodes.get(task_id, ""),
                state=statuses.RUNNING if state == RUNNING else state,
                reason=_reason(state, current),
                generation=gen,
                runs=current,
                earlier_runs=len(by_node.get(task_id, [])) - len(current),
                newest_run_id=int(current[-1]["id"]) if current and "id" in current[-1] else 0,
            )
        )
    return out


def _reason(state: str, runs: Sequence[Mapping[str, Any]]) -> str:
    """The reason of the newest run that ended as the node did (skipped: why it did not run)."""
    for row in reversed(runs):
        if row["status"] == state and row.get("reason"):
            return str(row["reason"])
    return ""
