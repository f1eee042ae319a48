"""Workflow graphs (pure): a DAG checked at save, and what a flow run does next given its nodes'
outcomes: which nodes start, which can no longer start (and why), and when it has ended."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from center.errors import RuleError
from protocol import statuses
from protocol.vocabulary import DependsWhen, FlowJoin, FlowStatus

MAX_NODES = 200
RUNNING = "running"  # a node's aggregate while any of its runs is planned, sent or running
# Ended badly: a parent that ended so satisfies `failure` edges, and the flow run failed.
FAILED_LIKE = frozenset({statuses.FAILED, statuses.TIMEOUT, statuses.KILLED, statuses.LOST})
# Fires a flow node's runs use: the flow's instant plus a sub-millisecond offset per workflow,
# so that a node's runs never take the id of the same rule's own whole-second fires; each
# re-run from a node moves its runs (and those of what follows it) one more millisecond on.
NODE_OFFSET_SPAN_US = 1000
MAX_RERUNS = 500


@dataclass(frozen=True, slots=True)
class Edge:
    parent: int
    child: int
    when: str = DependsWhen.SUCCESS


@dataclass(frozen=True, slots=True)
class Graph:
    """A workflow's nodes (task id -> join) and edges."""

    nodes: Mapping[int, str]
    edges: tuple[Edge, ...] = ()
    _parents: dict[int, tuple[Edge, ...]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        by_child: dict[int, list[Edge]] = {}
        for edge in self.edges:
            by_child.setdefault(edge.child, []).append(edge)
        self._parents.update((k, tuple(v)) for k, v in by_child.items())

    def parents(self, task_id: int) -> tuple[Edge, ...]:
        return self._parents.get(task_id, ())

    def roots(self) -> list[int]:
        return sorted(t for t in self.nodes if not self.parents(t))

    def descendants(self, task_id: int) -> set[int]:
        """`task_id` and every node that follows it."""
        children: dict[int, list[int]] = {}
        for edge in self.edges:
            children.setdefault(edge.parent, []).append(edge.child)
        seen, todo = {task_id}, [task_id]
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return seen


def flow_runid(workflow_id: int, sched_us: int) -> str:
    """A flow run's id, the same whichever leader starts it."""
    return f"f{workflow_id}-{sched_us}"


def node_sched_us(workflow_id: int, flow_sched_us: int, generation: int = 0) -> int:
    """The instant a node's runs carry in a flow run, in its `generation` (re-runs so far)."""
    offset = 1 + workflow_id % (NODE_OFFSET_SPAN_US - 1)
    return flow_sched_us + offset + generation * NODE_OFFSET_SPAN_US


def generation_of(workflow_id: int, flow_sched_us: int, run_sched_us: int) -> int:
    return (run_sched_us - node_sched_us(workflow_id, flow_sched_us)) // NODE_OFFSET_SPAN_US


def check_graph(
    graph: Graph, gid: int, rule_groups: Mapping[int, int | None], names: Mapping[int, str]
) -> None:
    """Refuse a graph that could not run, naming the field: no nodes, a rule that does not
    exist or is in another group, an edge to itself or outside the nodes, a bad `when` or
    `join`, a cycle."""
    if not graph.nodes:
        raise RuleError("nodes", "a workflow needs at least one rule")
    if len(graph.nodes) > MAX_NODES:
        raise RuleError("nodes", f"{len(graph.nodes)} rules; at most {MAX_NODES}")
    for task_id, join in graph.nodes.items():
        if task_id not in rule_groups:
            raise RuleError("nodes", f"no rule {task_id}")
        if rule_groups[task_id] != gid:
            raise RuleError("nodes", f"rule {_name(task_id, names)} is in another group")
        if join not in tuple(FlowJoin):
            raise RuleError("join", f"{join!r} is not one of {', '.join(FlowJoin)}")
    seen: set[tuple[int, int]] = set()
    for edge in graph.edges:
        _check_edge(edge, graph, names, seen)
    cycle = find_cycle(graph.nodes, graph.edges)
    if cycle:
        path = " → ".join(_name(t, names) for t in cycle)
        raise RuleError("edges", f"the edges make a cycle: {path}")


def _check_edge(
    edge: Edge, graph: Graph, names: Mapping[int, str], seen: set[tuple[int, int]]
) -> None:
    if edge.parent == edge.child:
        raise RuleError("edges", f"rule {_name(edge.parent, names)} cannot follow itself")
    for end in (edge.parent, edge.child):
        if end not in graph.nodes:
            raise RuleError("edges", f"rule {_name(end, names)} is not a node of this workflow")
    if edge.when not in tuple(DependsWhen):
        raise RuleError("when", f"{edge.when!r} is not one of {', '.join(DependsWhen)}")
    if (edge.parent, edge.child) in seen:
        raise RuleError("edges", f"the edge {edge.parent} → {edge.child} is given twice")
    seen.add((edge.parent, edge.child))


def find_cycle(nodes: Iterable[int], edges: Iterable[Edge]) -> list[int]:
    """One cycle as a path that ends where it starts, or [] when the graph is acyclic."""
    children: dict[int, list[int]] = {}
    for edge in edges:
        children.setdefault(edge.parent, []).append(edge.child)
    colour: dict[int, int] = {}  # 1 = on the current path, 2 = done
    for start in sorted(nodes):
        if colour.get(start):
            continue
        path, stack = [start], [iter(sorted(children.get(start, ())))]
        colour[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[path.pop()] = 2
                stack.pop()
            elif colour.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not colour.get(nxt):
                colour[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(children.get(nxt, ()))))
    return []


def _name(task_id: int, names: Mapping[int, str]) -> str:
    name = names.get(task_id)
    return f"{task_id} ({name!r})" if name else str(task_id)


# ---------------------------------------------------------------- a flow run's next step


@dataclass(frozen=True, slots=True)
class NodeRun:
    """One run row of a node in a flow run."""

    task_id: int
    status: str
    attempt: int = 0
    first_runid: str = ""
    generation: int = 0  # re-runs from this node (or one before it) when the run was made


@dataclass(frozen=True, slots=True)
class Step:
    start: tuple[int, ...] = ()
    skip: Mapping[int, str] = field(default_factory=dict)  # task id -> reason
    ended: bool = False
    status: str = FlowStatus.RUNNING
    nodes: tuple[int, ...] = ()  # when ended other than success: the nodes that made it so


def node_outcomes(runs: Iterable[NodeRun], generations: Mapping[int, int]) -> dict[int, str]:
    """Each node's outcome: RUNNING while any run is in flight, else success when every run
    succeeded, else its worst end. Per chain of retries only the newest attempt counts, and
    runs of an earlier generation (before a re-run) are history. Nodes with no run are absent."""
    latest: dict[tuple[int, str], NodeRun] = {}
    for run in runs:
        if run.generation != generations.get(run.task_id, 0):
            continue
        key = (run.task_id, run.first_runid)
        if key not in latest or run.attempt > latest[key].attempt:
            latest[key] = run
    by_node: dict[int, list[str]] = {}
    for (task_id, _), run in latest.items():
        by_node.setdefault(task_id, []).append(run.status)
    return {task_id: _aggregate(found) for task_id, found in by_node.items()}


def _aggregate(found: list[str]) -> str:
    if any(s in statuses.ACTIVE for s in found):
        return RUNNING
    for worst in (statuses.FAILED, statuses.TIMEOUT, statuses.LOST, statuses.KILLED):
        if worst in found:
            return worst
    # A run skipped or missed on one agent (its overlap policy, say) means the node did not
    # fully run: its `success` children do not start.
    return statuses.SUCCESS if all(s == statuses.SUCCESS for s in found) else statuses.SKIPPED


def satisfies(when: str, outcome: str) -> bool:
    """Whether a parent that ended with `outcome` lets its child go along an edge `when`."""
    if when == DependsWhen.ALWAYS:
        return True
    if when == DependsWhen.FAILURE:
        return outcome in FAILED_LIKE
    return outcome == statuses.SUCCESS


def next_step(graph: Graph, outcomes: Mapping[int, str], names: Mapping[int, str]) -> Step:
    """What a flow run does now: start the nodes whose parents allow it, skip those that can
    no longer start, and say whether (and how) the run has ended."""
    start: list[int] = []
    skip: dict[int, str] = {}
    for task_id in sorted(graph.nodes):
        if task_id in outcomes:
            continue
        verdict = _readiness(graph, task_id, outcomes, names)
        if verdict is True:
            start.append(task_id)
        elif verdict:
            skip[task_id] = verdict
    if start or skip:
        return Step(tuple(start), skip)
    if len(outcomes) < len(graph.nodes) or RUNNING in outcomes.values():
        return Step()
    failed = [t for t in sorted(outcomes) if outcomes[t] in FAILED_LIKE]
    if failed:
        return Step(ended=True, status=FlowStatus.FAILED, nodes=tuple(failed))
    # Skipped although its parents let it go (its rule paused, no agent, its overlap policy):
    # the flow run did not do all it should have.
    missing = [
        t
        for t in sorted(outcomes)
        if outcomes[t] == statuses.SKIPPED and _readiness(graph, t, outcomes, names) is True
    ]
    if missing:
        return Step(ended=True, status=FlowStatus.SKIPPED, nodes=tuple(missing))
    return Step(ended=True, status=FlowStatus.SUCCESS)


def _readiness(
    graph: Graph, task_id: int, outcomes: Mapping[int, str], names: Mapping[int, str]
) -> bool | str:
    """True: start now; a reason: can never start; False: wait."""
    parents = graph.parents(task_id)
    if not parents:
        return True
    ended = [(e, outcomes[e.parent]) for e in parents if outcomes.get(e.parent, RUNNING) != RUNNING]
    good = [e for e, outcome in ended if satisfies(e.when, outcome)]
    bad = [(e, outcome) for e, outcome in ended if not satisfies(e.when, outcome)]
    if graph.nodes[task_id] == FlowJoin.ANY:
        if good:
            return True
        return _skip_reason(bad, names) if len(bad) == len(parents) else False
    if bad:
        return _skip_reason(bad, names)
    return len(good) == len(parents)


def _skip_reason(bad: list[tuple[Edge, str]], names: Mapping[int, str]) -> str:
    edge, outcome = bad[0]
    return (
        f"parent {_name(edge.parent, names)} ended {outcome}; the edge runs this node "
        f"on {edge.when}"
    )
