"""A workflow's graph laid out for an SVG template (pure, no JavaScript): columns by the longest
path from the roots, boxes for nodes, curved arrows for edges with a style per `when`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from center.dag import Edge

BOX_W, BOX_H = 190, 46
GAP_X, GAP_Y = 80, 22  # between columns (room for the edge labels), between boxes
PAD = 12
LABEL_CHARS = 24  # what fits in a box at the stylesheet's font size


@dataclass(frozen=True, slots=True)
class Box:
    task_id: int
    label: str  # the name, shortened to fit
    title: str  # the whole name, for the tooltip
    layer: int  # column: the longest path from a root
    row: int  # place in its column, from the top
    x: float
    y: float
    state: str  # the class that colours it: a run status, "running", "pending" or "" (no run)
    width: float = BOX_W
    height: float = BOX_H
    state_label: str = ""  # the state as the reader reads it (in their language)


@dataclass(frozen=True, slots=True)
class Arrow:
    parent: int
    child: int
    when: str
    path: str  # the SVG path's `d`
    label_x: float
    label_y: float
    label: str = ""  # `when` as the reader reads it (in their language)


@dataclass(frozen=True, slots=True)
class Drawing:
    boxes: tuple[Box, ...]
    arrows: tuple[Arrow, ...]
    width: int
    height: int


def layers(nodes: Iterable[int], edges: Iterable[Edge]) -> dict[int, int]:
    """Each node's column: 0 for roots, else one more than its furthest parent (Kahn's order).
    A node left in a cycle (a graph saved before the checks) goes after all the others."""
    nodes = sorted(set(nodes))
    parents: dict[int, list[int]] = {n: [] for n in nodes}
    children: dict[int, list[int]] = {n: [] for n in nodes}
    for edge in edges:
        if edge.parent in parents and edge.child in parents:
            parents[edge.child].append(edge.parent)
            children[edge.parent].append(edge.child)
    waiting = {n: len(parents[n]) for n in nodes}
    ready = [n for n in nodes if not waiting[n]]
    out: dict[int, int] = {}
    while ready:
        node = ready.pop(0)
        out[node] = max((out[p] + 1 for p in parents[node]), default=0)
        for child in children[node]:
            waiting[child] -= 1
            if not waiting[child]:
                ready.append(child)
    last = max(out.values(), default=-1) + 1
    return out | {n: last for n in nodes if n not in out}


def rows(columns: Mapping[int, int], edges: Iterable[Edge]) -> dict[int, int]:
    """Each node's place in its column: roots by id, later columns by the mean place of their
    parents (fewer crossings), then by id."""
    parents: dict[int, list[int]] = {}
    for edge in edges:
        parents.setdefault(edge.child, []).append(edge.parent)
    out: dict[int, int] = {}
    for layer in sorted(set(columns.values())):
        members = [n for n in columns if columns[n] == layer]

        def weight(node: int) -> tuple[float, int]:
            placed = [out[p] for p in parents.get(node, []) if p in out]
            return (sum(placed) / len(placed) if placed else -1.0, node)

        for row, node in enumerate(sorted(members, key=weight)):
            out[node] = row
    return out


def _same(text: str) -> str:
    return text


def _short(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"


def layout(
    names: Mapping[int, str],
    edges: Iterable[Edge],
    states: Mapping[int, str] | None = None,
    words: Callable[[str], str] = _same,
) -> Drawing:
    """Boxes and arrows for the nodes (`names`: task id -> rule name) and their edges, each box
    with the state it is coloured by (`states`, when a flow run is chosen); `words` turns the
    states and `when`s the drawing shows into the reader's language (names are data: as is)."""
    if not names:
        return Drawing((), (), 0, 0)
    edges = [e for e in edges if e.parent in names and e.child in names]
    columns = layers(names, edges)
    places = rows(columns, edges)
    tallest = max((places[n] + 1 for n in places), default=0)
    per_column = {c: sum(1 for n in columns if columns[n] == c) for c in set(columns.values())}
    boxes: dict[int, Box] = {}
    for node in sorted(names):
        column, row = columns[node], places[node]
        shift = (tallest - per_column[column]) * (BOX_H + GAP_Y) / 2  # centre short columns
        label = names[node] or f"#{node}"
        x = PAD + column * (BOX_W + GAP_X)
        y = PAD + shift + row * (BOX_H + GAP_Y)
        state = (states or {}).get(node, "")
        shown = words(state) if state else ""
        boxes[node] = Box(node, _short(label), label, column, row, x, y, state, state_label=shown)
    arrows = tuple(_arrow(boxes[e.parent], boxes[e.child], e.when, words) for e in edges)
    width = PAD * 2 + (max(per_column, default=0) + 1) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + tallest * (BOX_H + GAP_Y) - GAP_Y
    return Drawing(tuple(boxes.values()), arrows, width, height)


def _arrow(parent: Box, child: Box, when: str, words: Callable[[str], str] = _same) -> Arrow:
    """A curve from the parent's right side to the child's left side."""
    x1, y1 = parent.x + parent.width, parent.y + parent.height / 2
    x2, y2 = child.x, child.y + child.height / 2
    bend = max((x2 - x1) / 2, 30.0)
    path = (
        f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    )
    middle = ((x1 + x2) / 2, (y1 + y2) / 2 - 5)
    return Arrow(parent.task_id, child.task_id, when, path, *middle, label=words(when))
