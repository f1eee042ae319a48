"""A workflow's editable fields and graph, from a form or the API, checked as the center would."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from admin.errors import Invalid
from center.calendars import Calendar, find_calendar
from center.dag import Edge, Graph, check_graph
from center.errors import RuleError
from center.timing import build_timing
from i18n.marks import N_
from protocol.vocabulary import (
    CalendarFallback,
    CalendarMode,
    DependsWhen,
    FlowJoin,
    Misfire,
    Overlap,
    RuleStatus,
)

# Pure: no I/O. Whether the group and the rules exist is read by services/workflows.py.

TEXT_LIMITS = {
    "name": 128,
    "rule": 128,
    "timezone": 64,
    "overlap": 16,
    "misfire": 8,
    "description": 500,
    "calendar": 64,
    "calendar_mode": 8,
    "calendar_fallback": 8,
}
INT_FIELDS = ("status", "misfire_window_s")
COLUMNS = (*TEXT_LIMITS, *INT_FIELDS)
# `replace` would kill a flow run's nodes midway: a workflow overlaps by skip, queue or parallel.
OVERLAPS = (Overlap.SKIP, Overlap.QUEUE, Overlap.PARALLEL)
MISFIRES = tuple(Misfire)
JOINS = tuple(FlowJoin)
WHENS = tuple(DependsWhen)
MAX_MISFIRE_WINDOW_S = 30 * 86400
DEFAULTS: dict[str, Any] = {
    "name": "",
    "rule": "",
    "timezone": "UTC",
    "overlap": Overlap.SKIP.value,
    "misfire": Misfire.SKIP.value,
    "description": "",
    "status": int(RuleStatus.ENABLED),
    "misfire_window_s": 3600,
    "calendar": "",
    "calendar_mode": CalendarMode.ONLY.value,
    "calendar_fallback": CalendarFallback.SKIP.value,
}
EDGE_SYNTAX = N_("write one edge a line: PARENT -> CHILD [success|failure|always]")


@dataclass(frozen=True, slots=True)
class NodeRule:
    """What the checks need to know of a rule that would be a node."""

    gid: int | None
    name: str
    is_daemon: bool = False
    deleted: bool = False


def checked(
    values: Mapping[str, Any],
    calendars: Mapping[tuple[int, str], Calendar] | None = None,
    gid: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The `workflow` columns to store; Invalid names the field that is wrong. `calendars`:
    the group's own (`gid`); `seed` (the workflow's id, 0 before it has one) seeds H."""
    out = _typed({name: values.get(name, DEFAULTS[name]) for name in COLUMNS})
    if not out["name"]:
        raise Invalid("name", "is empty: give the workflow a name")
    if out["status"] not in (RuleStatus.ENABLED, RuleStatus.PAUSED):
        raise Invalid("status", "must be 1 (enabled) or 0 (paused)")
    for name, allowed in (("overlap", OVERLAPS), ("misfire", MISFIRES)):
        if out[name] not in allowed:
            raise Invalid(name, f"{out[name]!r} is not one of {', '.join(allowed)}")
    if not 0 <= out["misfire_window_s"] <= MAX_MISFIRE_WINDOW_S:
        raise Invalid("misfire_window_s", f"is out of range 0-{MAX_MISFIRE_WINDOW_S}")
    out["timezone"] = out["timezone"] or "UTC"
    _check_timing(out, calendars or {}, gid, seed)
    return out


def _check_timing(
    out: Mapping[str, Any],
    calendars: Mapping[tuple[int, str], Calendar],
    gid: int | None,
    seed: int,
) -> None:
    """The schedule, its zone and calendar parse as the center parses them."""
    try:
        calendar = find_calendar(out["calendar"], gid, calendars) if out["calendar"] else None
        build_timing(
            # No schedule ("") means started by hand only; the zone must exist all the same.
            out["rule"] or "@hourly",
            out["timezone"],
            seed=seed,
            calendar=calendar,
            mode=out["calendar_mode"],
            fallback=out["calendar_fallback"],
        )
    except RuleError as exc:
        raise Invalid(exc.field, exc.reason) from None


def _typed(out: dict[str, Any]) -> dict[str, Any]:
    """Text stripped and within its column, whole numbers whole."""
    for name, limit in TEXT_LIMITS.items():
        if not isinstance(out[name], str):
            raise Invalid(name, "must be text")
        if len(out[name].encode()) > limit:
            raise Invalid(name, f"is longer than {limit} bytes")
        out[name] = out[name].strip()
    for name in INT_FIELDS:
        if not isinstance(out[name], int) or isinstance(out[name], bool):
            raise Invalid(name, "must be a whole number")
    return out


def _whole(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(field, f"{str(value)[:40]!r} is not a rule id")
    return value


def graph_from(nodes: Any, edges: Any) -> Graph:
    """The graph from the API's shapes: nodes [{task_id, join}], edges [{parent_task_id,
    child_task_id, when}]; Invalid names `nodes` or `edges` when the shape is wrong."""
    if not isinstance(nodes, Sequence) or isinstance(nodes, str):
        raise Invalid("nodes", "must be a list of {task_id, join}")
    if not isinstance(edges, Sequence) or isinstance(edges, str):
        raise Invalid("edges", "must be a list of {parent_task_id, child_task_id, when}")
    joins: dict[int, str] = {}
    for node in nodes:
        if not isinstance(node, Mapping):
            raise Invalid("nodes", "must be a list of {task_id, join}")
        task_id = _whole(node.get("task_id"), "nodes")
        if task_id in joins:
            raise Invalid("nodes", f"rule {task_id} is given twice")
        joins[task_id] = str(node.get("join") or FlowJoin.ALL)
    out: list[Edge] = []
    for edge in edges:
        if not isinstance(edge, Mapping):
            raise Invalid("edges", "must be a list of {parent_task_id, child_task_id, when}")
        parent = _whole(edge.get("parent_task_id"), "edges")
        child = _whole(edge.get("child_task_id"), "edges")
        out.append(Edge(parent, child, str(edge.get("when") or DependsWhen.SUCCESS)))
    return Graph(joins, tuple(out))


def check_nodes(graph: Graph, gid: int, rules: Mapping[int, NodeRule]) -> None:
    """The center's graph checks (cycles, groups, self edges …) and no daemon as a step."""
    live = {t: r.gid for t, r in rules.items() if not r.deleted}
    names = {t: r.name for t, r in rules.items()}
    try:
        check_graph(graph, gid, live, names)
    except RuleError as exc:
        raise Invalid(exc.field, exc.reason) from None
    for task_id in sorted(graph.nodes):
        if rules[task_id].is_daemon:
            raise Invalid(
                "nodes",
                f"rule {task_id} ({names[task_id]!r}) is a daemon: it has no end to wait for",
            )


def as_api(graph: Graph) -> dict[str, list[dict[str, Any]]]:
    """The graph in the API's shapes (the reverse of graph_from)."""
    return {
        "nodes": [{"task_id": t, "join": graph.nodes[t]} for t in sorted(graph.nodes)],
        "edges": [
            {"parent_task_id": e.parent, "child_task_id": e.child, "when": e.when}
            for e in sorted(graph.edges, key=lambda e: (e.parent, e.child))
        ],
    }


# ---------------------------------------------------------------- the form's edge lines


def parse_edges(text: str, names: Mapping[int, str]) -> list[dict[str, Any]]:
    """Edges from lines `PARENT -> CHILD [when]`; a node is its rule's name or `#id`, among
    the workflow's nodes (`names`: task id -> name)."""
    out: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.replace("→", "->").split("->")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise Invalid("edges", f"line {number}: {EDGE_SYNTAX}")
        parent = _node_ref(parts[0].strip(), names, number)
        child, when = _child_and_when(parts[1].strip(), names, number)
        out.append({"parent_task_id": parent, "child_task_id": child, "when": when})
    return out


def _child_and_when(text: str, names: Mapping[int, str], number: int) -> tuple[int, str]:
    head, _, last = text.rpartition(" ")
    if last in WHENS and head.strip() and _matches(text, names) == []:
        return _node_ref(head.strip(), names, number), last
    return _node_ref(text, names, number), DependsWhen.SUCCESS.value


def _matches(ref: str, names: Mapping[int, str]) -> list[int]:
    if ref.startswith("#") and ref[1:].isdigit():
        return [int(ref[1:])] if int(ref[1:]) in names else []
    return sorted(t for t, name in names.items() if name == ref)


def _node_ref(ref: str, names: Mapping[int, str], number: int) -> int:
    found = _matches(ref, names)
    if len(found) == 1:
        return found[0]
    if found:
        raise Invalid("edges", f"line {number}: {len(found)} nodes are named {ref!r}: write #id")
    raise Invalid("edges", f"line {number}: {ref!r} is not a node of this workflow (tick it)")


def edges_text(edges: Sequence[Mapping[str, Any]], names: Mapping[int, str]) -> str:
    """The edges as the form's lines (names where they are unambiguous, else #id)."""

    def ref(task_id: int) -> str:
        name = names.get(task_id, "")
        plain = name and "->" not in name and not name.startswith("#") and name == name.strip()
        return name if plain and _matches(name, names) == [task_id] else f"#{task_id}"

    return "\n".join(
        f"{ref(e['parent_task_id'])} -> {ref(e['child_task_id'])} {e['when']}" for e in edges
    )


def from_form(
    form: Mapping[str, str], chosen: Sequence[str], names: Mapping[int, str]
) -> dict[str, Any]:
    """The values of the workflow form: text as given, numbers parsed, the ticked rules with
    their join (`join-<id>`), and the edge lines against the ticked rules' `names`."""
    values: dict[str, Any] = {name: form[name] for name in TEXT_LIMITS if name in form}
    for name in (*INT_FIELDS, "gid"):
        text = form.get(name, "").strip()
        if text:
            if not text.lstrip("-").isdigit() or len(text) > 12:
                raise Invalid(name, f"{text[:40]!r} is not a whole number")
            values[name] = int(text)
    ids = sorted({int(c) for c in chosen if c.strip().isdigit() and len(c) < 12})
    values["nodes"] = [{"task_id": t, "join": form.get(f"join-{t}", FlowJoin.ALL)} for t in ids]
    values["edges"] = parse_edges(form.get("edges", ""), {t: names.get(t, "") for t in ids})
    return values
