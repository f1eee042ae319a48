"""Workflow graphs (pure): the save-time checks, node outcomes from runs, and the next step."""

from __future__ import annotations

import pytest

from center.dag import (
    MAX_NODES,
    RUNNING,
    Edge,
    Graph,
    NodeRun,
    check_graph,
    find_cycle,
    flow_runid,
    generation_of,
    next_step,
    node_outcomes,
    node_sched_us,
)
from center.errors import RuleError
from protocol.vocabulary import FlowStatus

A, B, C, D = 1, 2, 3, 4
NAMES = {A: "extract", B: "fetch", C: "load", D: "report"}
GID = 10
GROUPS = {A: GID, B: GID, C: GID, D: GID, 9: 11}


def _graph(nodes: dict[int, str] | list[int], *edges: tuple[int, int, str]) -> Graph:
    joins = nodes if isinstance(nodes, dict) else dict.fromkeys(nodes, "all")
    return Graph(joins, tuple(Edge(p, c, w) for p, c, w in edges))


DIAMOND = _graph([A, B, C, D], (A, C, "success"), (B, C, "success"), (C, D, "success"))

# ---------------------------------------------------------------- check_graph


@pytest.mark.parametrize(
    ("graph", "field", "words"),
    [
        (_graph([]), "nodes", "at least one rule"),
        (_graph(list(range(1, MAX_NODES + 2))), "nodes", f"at most {MAX_NODES}"),
        (_graph([A, 5]), "nodes", "no rule 5"),
        (_graph([A, 9]), "nodes", "rule 9 is in another group"),
        (_graph({A: "some"}), "join", "'some' is not one of all, any"),
        (_graph([A, B], (A, A, "success")), "edges", "rule 1 ('extract') cannot follow itself"),
        (_graph([A], (A, B, "success")), "edges", "rule 2 ('fetch') is not a node"),
        (_graph([A, B], (A, B, "sometimes")), "when", "'sometimes' is not one of"),
        (_graph([A, B], (A, B, "success"), (A, B, "failure")), "edges", "given twice"),
        (
            _graph([A, B], (A, B, "success"), (B, A, "success")),
            "edges",
            "cycle: 1 ('extract') → 2 ('fetch') → 1 ('extract')",
        ),
        (
            _graph(
                [A, B, C, D],
                (A, B, "success"),
                (B, C, "always"),
                (C, D, "success"),
                (D, B, "failure"),
            ),
            "edges",
            "cycle: 2 ('fetch') → 3 ('load') → 4 ('report') → 2 ('fetch')",
        ),
    ],
)
def test_a_graph_that_could_not_run_is_refused_naming_the_field(graph, field, words):
    """Each bad graph raises RuleError naming the field and saying what is wrong."""
    groups = GROUPS | {n: GID for n in graph.nodes if n not in (5, 9) and n not in GROUPS}
    with pytest.raises(RuleError) as caught:
        check_graph(graph, GID, groups, NAMES)
    assert caught.value.field == field
    assert words in caught.value.reason


@pytest.mark.parametrize(
    "graph",
    [
        DIAMOND,
        _graph([A]),
        _graph({A: "all", B: "all", C: "any"}, (A, C, "failure"), (B, C, "always")),
        _graph([A, B, C], (A, B, "success"), (A, C, "success"), (B, C, "success")),
    ],
)
def test_a_good_graph_passes(graph):
    """Diamonds, single nodes, `any` joins and shortcuts past a layer are all acyclic."""
    check_graph(graph, GID, GROUPS, NAMES)


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ([], []),
        ([Edge(A, B)], []),
        ([Edge(A, B), Edge(B, C), Edge(C, A)], [A, B, C, A]),
        ([Edge(A, B), Edge(C, D), Edge(D, C)], [C, D, C]),
        ([Edge(A, B), Edge(A, C), Edge(B, D), Edge(C, D)], []),
    ],
)
def test_find_cycle(edges, cycle):
    """A cycle comes back as a closed path; a DAG (even with a shared descendant) as []."""
    assert find_cycle([A, B, C, D], edges) == cycle


def test_roots_and_descendants():
    """Roots are the nodes without parents; descendants include the node itself."""
    assert DIAMOND.roots() == [A, B]
    assert DIAMOND.descendants(A) == {A, C, D}
    assert DIAMOND.descendants(D) == {D}
    assert [e.parent for e in DIAMOND.parents(C)] == [A, B]


# ---------------------------------------------------------------- ids and instants


def test_ids_and_generations():
    """The flow run id is deterministic; each generation is one more millisecond away and
    reads back as its number; a node's instant is never a whole second."""
    assert flow_runid(3, 1_000_000) == "f3-1000000"
    base = node_sched_us(3, 5_000_000)
    assert base % 1_000_000 != 0 and 5_000_000 < base < 5_001_000
    for generation in (0, 1, 7):
        sched = node_sched_us(3, 5_000_000, generation)
        assert generation_of(3, 5_000_000, sched) == generation


# ---------------------------------------------------------------- node_outcomes


def _run(task_id: int, status: str, attempt: int = 0, chain: str = "", gen: int = 0) -> NodeRun:
    return NodeRun(task_id, status, attempt, chain or f"{task_id}-0", gen)


@pytest.mark.parametrize(
    ("runs", "generations", "outcomes"),
    [
        ([], {}, {}),
        ([_run(A, "success")], {}, {A: "success"}),
        ([_run(A, "running")], {}, {A: RUNNING}),
        ([_run(A, "planned")], {}, {A: RUNNING}),
        # Fan-in: a node on two agents has ended only when both runs have.
        ([_run(A, "success", chain="a1"), _run(A, "running", chain="a2")], {}, {A: RUNNING}),
        ([_run(A, "success", chain="a1"), _run(A, "failed", chain="a2")], {}, {A: "failed"}),
        ([_run(A, "success", chain="a1"), _run(A, "success", chain="a2")], {}, {A: "success"}),
        ([_run(A, "timeout", chain="a1"), _run(A, "killed", chain="a2")], {}, {A: "timeout"}),
        ([_run(A, "success", chain="a1"), _run(A, "skipped", chain="a2")], {}, {A: "skipped"}),
        ([_run(A, "skipped")], {}, {A: "skipped"}),
        # Retries: only the newest attempt of each chain counts.
        ([_run(A, "failed", 0), _run(A, "success", 1)], {}, {A: "success"}),
        ([_run(A, "failed", 0), _run(A, "running", 1)], {}, {A: RUNNING}),
        # Re-runs: runs of an older generation are history; none yet in the new one = absent.
        ([_run(A, "failed", gen=0)], {A: 1}, {}),
        ([_run(A, "failed", gen=0), _run(A, "success", gen=1)], {A: 1}, {A: "success"}),
        (
            [_run(A, "success"), _run(C, "failed", gen=0), _run(C, "running", gen=1)],
            {C: 1},
            {A: "success", C: RUNNING},
        ),
    ],
)
def test_node_outcomes(runs, generations, outcomes):
    """A node's outcome is the aggregate of the newest attempt of each of its runs in the
    current generation: running while any goes on, else its worst end, else success."""
    assert node_outcomes(runs, generations) == outcomes


# ---------------------------------------------------------------- next_step


@pytest.mark.parametrize(
    ("graph", "outcomes", "start", "skip"),
    [
        (DIAMOND, {}, (A, B), {}),
        (DIAMOND, {A: "success", B: RUNNING}, (), {}),
        (DIAMOND, {A: "success", B: "success"}, (C,), {}),
        (DIAMOND, {A: "failed", B: RUNNING}, (), {C: "parent 1 ('extract') ended failed"}),
        (DIAMOND, {A: "success", B: "skipped"}, (), {C: "parent 2 ('fetch') ended skipped"}),
        (
            DIAMOND,
            {A: "success", B: "success", C: "skipped"},
            (),
            {D: "parent 3 ('load') ended skipped; the edge runs this node on success"},
        ),
        # join any: the first parent that ended as its edge asks lets the node go.
        (
            _graph({A: "all", B: "all", C: "any"}, (A, C, "success"), (B, C, "success")),
            {A: "success", B: RUNNING},
            (C,),
            {},
        ),
        (
            _graph({A: "all", B: "all", C: "any"}, (A, C, "success"), (B, C, "success")),
            {A: "failed", B: RUNNING},
            (),
            {},
        ),
        (
            _graph({A: "all", B: "all", C: "any"}, (A, C, "success"), (B, C, "success")),
            {A: "failed", B: "failed"},
            (),
            {C: "parent 1 ('extract') ended failed"},
        ),
        # failure and always edges
        (_graph([A, B], (A, B, "failure")), {A: "failed"}, (B,), {}),
        (_graph([A, B], (A, B, "failure")), {A: "lost"}, (B,), {}),
        (_graph([A, B], (A, B, "failure")), {A: "success"}, (), {B: "on failure"}),
        (_graph([A, B], (A, B, "always")), {A: "timeout"}, (B,), {}),
        (_graph([A, B], (A, B, "always")), {A: "skipped"}, (B,), {}),
    ],
)
def test_next_step_starts_and_skips(graph, outcomes, start, skip):
    """Which nodes start now and which can never start, with a reason naming the parent."""
    step = next_step(graph, outcomes, NAMES)
    assert step.start == start
    assert set(step.skip) == set(skip)
    for task_id, words in skip.items():
        assert words in step.skip[task_id]
    assert not step.ended


@pytest.mark.parametrize(
    ("outcomes", "ended", "status", "nodes"),
    [
        ({A: "success", B: "success", C: "success", D: RUNNING}, False, FlowStatus.RUNNING, ()),
        ({A: "success", B: "success", C: "success", D: "success"}, True, FlowStatus.SUCCESS, ()),
        ({A: "failed", B: "success", C: "skipped", D: "skipped"}, True, FlowStatus.FAILED, (A,)),
        ({A: "success", B: "killed", C: "skipped", D: "skipped"}, True, FlowStatus.FAILED, (B,)),
        # C was skipped although its parents let it go (its rule paused, say).
        ({A: "success", B: "success", C: "skipped", D: "skipped"}, True, FlowStatus.SKIPPED, (C,)),
    ],
)
def test_next_step_ends_the_flow_run(outcomes, ended, status, nodes):
    """The flow run ends once every node ran or was skipped: failed naming the failed nodes,
    skipped naming a node that did not run although it could, else success."""
    step = next_step(DIAMOND, outcomes, NAMES)
    assert (step.ended, step.status, step.nodes) == (ended, status, nodes)
    assert step.start == () and dict(step.skip) == {}


def test_a_rerun_floor_lets_a_failed_node_and_its_children_go_again():
    """After a re-run from A (A and its descendants one generation on), A starts again and,
    once it succeeds, C and D follow; B's earlier success still counts."""
    runs = [_run(A, "failed"), _run(B, "success"), _run(C, "skipped"), _run(D, "skipped")]
    generations = dict.fromkeys(DIAMOND.descendants(A), 1)
    outcomes = node_outcomes(runs, generations)
    assert outcomes == {B: "success"}
    assert next_step(DIAMOND, outcomes, NAMES).start == (A,)
    runs.append(_run(A, "success", gen=1))
    outcomes = node_outcomes(runs, generations)
    assert next_step(DIAMOND, outcomes, NAMES).start == (C,)
