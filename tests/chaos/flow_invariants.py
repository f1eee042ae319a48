"""The chaos run's workflow invariants: pure functions of the flow run rows and the run rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from center.dag import FAILED_LIKE, generation_of
from protocol import statuses

Row = Mapping[str, Any]
S = 1_000_000


def fires_without_flow_run(
    flow_runs: Iterable[Row], workflow_id: int, lo_us: int, hi_us: int
) -> list[str]:
    """Every second of the window (the workflow fires each second) has its flow run."""
    have = {r["sched_us"] for r in flow_runs if r["workflow_id"] == workflow_id}
    first = -(-lo_us // S) * S
    return [f"no flow run for the fire at {t}" for t in range(first, hi_us + 1, S) if t not in have]


def still_open(flow_runs: Iterable[Row]) -> list[str]:
    """After the settle no flow run is running or queued: none was forgotten mid-way."""
    return [
        f"{r['id']} still {r['status']}" for r in flow_runs if r["status"] in ("running", "queued")
    ]


def joins_broken(
    flow_runs: Iterable[Row], rows: Iterable[Row], parents: Mapping[int, list[int]]
) -> list[str]:
    """A child node started only after every run of each of its parents ended, each node ran
    in one generation only (nothing re-ran by itself), and a successful flow run has a success
    of every node."""
    by_flow: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if row["flow_runid"]:
            by_flow[row["flow_runid"]].append(row)
    problems: list[str] = []
    for flow in flow_runs:
        nodes = by_flow.get(flow["id"], [])
        problems += _generations(flow, nodes) + _order(flow, nodes, parents)
        done = {r["task_id"] for r in nodes if r["status"] == statuses.SUCCESS}
        if flow["status"] == "success" and done != set(parents):
            problems.append(f"{flow['id']} success without every node: {sorted(done)}")
    return problems


def _generations(flow: Row, nodes: list[Row]) -> list[str]:
    return [
        f"{r['runid']} of {flow['id']} is of generation {g}"
        for r in nodes
        if (g := generation_of(flow["workflow_id"], flow["sched_us"], r["sched_us"])) != 0
    ]


def _order(flow: Row, nodes: list[Row], parents: Mapping[int, list[int]]) -> list[str]:
    ends: dict[int, list[int]] = defaultdict(list)
    for r in nodes:
        ends[r["task_id"]].append(r["end"] if r["status"] in statuses.FINAL else 1 << 62)
    problems = []
    for r in nodes:
        if not r["start"]:
            continue
        for parent in parents.get(r["task_id"], []):
            if not ends.get(parent) or r["start"] < max(ends[parent]):
                problems.append(
                    f"{r['runid']} of {flow['id']} started before parent {parent} ended"
                )
    return problems


def failed_without_cause(flow_runs: Iterable[Row], rows: Iterable[Row]) -> list[str]:
    """A failed flow run has a node run that failed, timed out, was killed or lost."""
    bad = {r["flow_runid"] for r in rows if r["status"] in FAILED_LIKE}
    return [
        f"{r['id']} failed ({r['reason']!r}) but no node run did"
        for r in flow_runs
        if r["status"] == "failed" and r["id"] not in bad
    ]
