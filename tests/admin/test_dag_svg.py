"""The workflow graph's layout (pure) and the form's edge lines, table-driven."""

from __future__ import annotations

import pytest

from admin.dag_svg import BOX_H, BOX_W, GAP_X, GAP_Y, PAD, layers, layout, rows
from admin.errors import Invalid
from admin.flowfields import edges_text, from_form, parse_edges
from center.dag import Edge

A, B, C, D = 1, 2, 3, 4
DIAMOND = [Edge(A, C), Edge(B, C), Edge(C, D)]
NAMES = {A: "extract", B: "fetch", C: "load", D: "report"}


@pytest.mark.parametrize(
    ("nodes", "edges", "expected"),
    [
        ([A, B, C, D], DIAMOND, {A: 0, B: 0, C: 1, D: 2}),
        ([A], [], {A: 0}),
        ([A, B, C], [Edge(A, B), Edge(B, C), Edge(A, C)], {A: 0, B: 1, C: 2}),  # longest path
        ([A, B, C, D], [Edge(A, D), Edge(B, C)], {A: 0, B: 0, C: 1, D: 1}),
        ([A, B, C], [Edge(A, B), Edge(B, A)], {C: 0, A: 1, B: 1}),  # a stored cycle: after
        ([A, B], [Edge(A, 99)], {A: 0, B: 0}),  # an edge to no node is ignored
    ],
)
def test_layers_by_longest_path_from_the_roots(nodes, edges, expected):
    """A node's column is one more than its furthest parent's; roots are column 0."""
    assert layers(nodes, edges) == expected


def test_rows_follow_the_parents():
    """Roots are ordered by id; a later column's nodes by the mean row of their parents."""
    columns = {A: 0, B: 0, C: 1, D: 1}
    assert rows(columns, [Edge(B, C), Edge(A, D)]) == {A: 0, B: 1, D: 0, C: 1}


@pytest.mark.parametrize(
    ("task_id", "layer", "row", "x", "y"),
    [
        (A, 0, 0, PAD, PAD),
        (B, 0, 1, PAD, PAD + BOX_H + GAP_Y),
        # C and D are alone in their columns: centred between A and B.
        (C, 1, 0, PAD + BOX_W + GAP_X, PAD + (BOX_H + GAP_Y) / 2),
        (D, 2, 0, PAD + 2 * (BOX_W + GAP_X), PAD + (BOX_H + GAP_Y) / 2),
    ],
)
def test_diamond_positions(task_id, layer, row, x, y):
    """The diamond A→C, B→C, C→D: three columns, short ones centred."""
    drawing = layout(NAMES, DIAMOND)
    box = next(b for b in drawing.boxes if b.task_id == task_id)
    assert (box.layer, box.row, box.x, box.y) == (layer, row, x, y)
    assert box.label == NAMES[task_id] and box.state == ""


def test_diamond_size_arrows_and_states():
    """The drawing fits its boxes; each edge is a curve from the parent's right side to the
    child's left side, tagged with its `when`; boxes carry the chosen run's states."""
    edges = [Edge(A, C, "success"), Edge(B, C, "failure"), Edge(C, D, "always")]
    drawing = layout(NAMES, edges, {A: "success", B: "failed", C: "running"})
    assert drawing.width == 2 * PAD + 3 * BOX_W + 2 * GAP_X
    assert drawing.height == 2 * PAD + 2 * BOX_H + GAP_Y
    a_to_c = drawing.arrows[0]
    assert (a_to_c.parent, a_to_c.child, a_to_c.when) == (A, C, "success")
    assert a_to_c.path.startswith(f"M{PAD + BOX_W:.1f},{PAD + BOX_H / 2:.1f} C")
    assert a_to_c.path.endswith(
        f"{PAD + BOX_W + GAP_X:.1f},{PAD + (BOX_H + GAP_Y) / 2 + BOX_H / 2:.1f}"
    )
    assert [a.when for a in drawing.arrows] == ["success", "failure", "always"]
    assert {b.task_id: b.state for b in drawing.boxes} == {
        A: "success",
        B: "failed",
        C: "running",
        D: "",
    }


def test_long_names_are_shortened_with_the_whole_name_kept():
    drawing = layout({A: "a" * 40}, [])
    [box] = drawing.boxes
    assert len(box.label) == 24 and box.label.endswith("…") and box.title == "a" * 40


def test_an_empty_graph_draws_nothing():
    drawing = layout({}, [])
    assert (drawing.boxes, drawing.arrows, drawing.height) == ((), (), 0)


# ---------------------------------------------------------------- edge lines


@pytest.mark.parametrize(
    ("text", "edges"),
    [
        ("extract -> load", [(A, C, "success")]),
        ("extract -> load failure\n\n fetch→load always ", [(A, C, "failure"), (B, C, "always")]),
        ("#1 -> #3 always", [(A, C, "always")]),
        ("load -> report success", [(C, D, "success")]),
        ("", []),
    ],
)
def test_edge_lines(text, edges):
    """`PARENT -> CHILD [when]`, by name or #id; blank lines are skipped; success by default."""
    parsed = parse_edges(text, NAMES)
    assert [(e["parent_task_id"], e["child_task_id"], e["when"]) for e in parsed] == edges


@pytest.mark.parametrize(
    ("text", "names", "words"),
    [
        ("extract load", NAMES, "line 1: write one edge a line"),
        ("extract -> ", NAMES, "line 1"),
        ("\nextract -> nowhere", NAMES, "line 2: 'nowhere' is not a node"),
        ("#9 -> load", NAMES, "'#9' is not a node"),
        ("twin -> load", {A: "twin", B: "twin", C: "load"}, "2 nodes are named 'twin': write #id"),
        ("a -> b -> c", NAMES, "line 1"),
    ],
)
def test_bad_edge_lines_name_the_line(text, names, words):
    with pytest.raises(Invalid) as caught:
        parse_edges(text, names)
    assert caught.value.field == "edges" and words in caught.value.reason


def test_edges_text_round_trips():
    """The form shows stored edges as lines that parse back to the same edges, with #id
    where a name would be ambiguous."""
    names = {A: "twin", B: "twin", C: "load always", D: "report"}
    stored = [
        {"parent_task_id": A, "child_task_id": C, "when": "success"},
        {"parent_task_id": C, "child_task_id": D, "when": "always"},
        {"parent_task_id": B, "child_task_id": D, "when": "failure"},
    ]
    text = edges_text(stored, names)
    assert text.splitlines()[0] == "#1 -> load always success"
    assert parse_edges(text, names) == stored


def test_from_form():
    """Ticked rules become nodes with their join; numbers are parsed; edges use the names."""
    form = {
        "gid": "7",
        "name": "n",
        "status": "0",
        "misfire_window_s": "60",
        "join-3": "any",
        "edges": "extract -> load",
    }
    values = from_form(form, ["1", "3"], NAMES)
    assert values["gid"] == 7 and values["status"] == 0 and values["misfire_window_s"] == 60
    assert values["nodes"] == [{"task_id": 1, "join": "all"}, {"task_id": 3, "join": "any"}]
    assert values["edges"] == [{"parent_task_id": 1, "child_task_id": 3, "when": "success"}]
    with pytest.raises(Invalid) as caught:
        from_form({"misfire_window_s": "soon"}, [], NAMES)
    assert caught.value.field == "misfire_window_s"
