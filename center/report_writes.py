"""What a batch of run reports writes (pure): per run an insert, an update by row id, or nothing.

The store reads the batch's run rows first (locked), so each report's effect is decided here,
in Python, exactly as the guarded upsert would decide it in SQL: a report is written where the
run has no row, or where its row is not in a guarded status and belongs to the reporting agent.
The decided writes are then plain: an update of a known row id changes only the columns the
report carries and needs no per-row condition, and the rollups gain exactly what changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from center.rollup import RunFacts, Sums, sums_for
from protocol import statuses

# A start never overwrites a running or final row (a late start after the end, or a repeat).
STARTED_GUARD = statuses.FINAL | {statuses.RUNNING}
# An agent's own final status wins over a `lost` the center wrote (a result that came late);
# never over another final status.
FINISHED_GUARD = statuses.FINAL - {statuses.LOST}

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A run's row as read (and locked) before the write: its primary key and what it says."""

    row_id: int
    facts: RunFacts


@dataclass(slots=True)
class ReportWrites:
    """The writes one batch comes to, and what its rollups gain."""

    # Runs with no row: written with the guarded upsert, in report order (rare: a row is
    # always planned before its run is sent).
    insert_started: list[Row] = field(default_factory=list)
    insert_finished: list[Row] = field(default_factory=list)
    # (row id, report row) of rows that exist and take the report.
    update_started: list[tuple[int, Row]] = field(default_factory=list)
    update_finished: list[tuple[int, Row]] = field(default_factory=list)
    sums: dict[tuple[int, int], Sums] = field(default_factory=dict)


def facts_of(row: Mapping[str, Any]) -> RunFacts:
    """A report row as rollups see it."""
    return RunFacts(
        runid=row["runid"],
        task_id=row["task_id"],
        sched_us=row["sched_us"],
        status=row["status"],
        start_us=row.get("start") or 0,
        end_us=row.get("end") or 0,
        aid=row["aid"],
    )


def split_by_rule(
    started: list[Row], finished: list[Row], parts: int
) -> list[tuple[list[Row], list[Row]]]:
    """The reports cut into `parts` (started, finished) by ranges of rules, each part about as
    many rules, in their order: a run's reports, and a rollup row's runs, all in one part, so
    that the parts' transactions share no row. Empty parts are left out."""
    rules = sorted({row["task_id"] for row in started} | {row["task_id"] for row in finished})
    size = -(-len(rules) // parts) if rules else 1
    part_of = {task_id: i // size for i, task_id in enumerate(rules)}
    out: list[tuple[list[Row], list[Row]]] = [([], []) for _ in range(-(-len(rules) // size))]
    for row in started:
        out[part_of[row["task_id"]]][0].append(row)
    for row in finished:
        out[part_of[row["task_id"]]][1].append(row)
    return out


def plan_writes(
    stored: Mapping[str, StoredRun], started: Iterable[Row], finished: Iterable[Row]
) -> ReportWrites:
    """The writes of `started` then `finished` report rows on runs that were `stored`
    (absent: no row). A run that finished within the batch takes only its finish (which
    carries every column its start does): one write, not two."""
    finished = list(finished)
    done = {row["runid"] for row in finished}
    out = ReportWrites()
    state = {runid: run.facts for runid, run in stored.items()}
    _apply(out, stored, state, (r for r in started if r["runid"] not in done), started=True)
    _apply(out, stored, state, finished, started=False)
    return out


def _apply(
    out: ReportWrites,
    stored: Mapping[str, StoredRun],
    state: dict[str, RunFacts],
    rows: Iterable[Row],
    *,
    started: bool,
) -> None:
    """Decide each row in order against the state the rows before it left."""
    guard = STARTED_GUARD if started else FINISHED_GUARD
    inserts = out.insert_started if started else out.insert_finished
    updates: dict[str, tuple[int, Row]] = {}
    for row in rows:
        runid = row["runid"]
        if runid not in stored:
            inserts.append(row)  # the upsert decides repeats in SQL; rollups follow below
        old = state.get(runid)
        # `rollup.reported(guard)`, inline (once per report): a guarded status, or another
        # agent's row, keeps the row as it is (a repeat, a late start, another agent's report).
        if old is not None and (old.status in guard or old.aid != row["aid"]):
            continue
        new = state[runid] = facts_of(row)
        if runid in stored:
            updates[runid] = (stored[runid].row_id, row)  # a later report of it wins
        if old is None or old.status != new.status:
            _count(out.sums, old, new)  # a start is never final: it counts nothing
    (out.update_started if started else out.update_finished).extend(updates.values())


def _count(sums: dict[tuple[int, int], Sums], old: RunFacts | None, new: RunFacts) -> None:
    """A run counts once it is final, and moves if its final status changes."""
    for run, sign in ((old, -1), (new, +1)):
        if run is not None and run.status in statuses.FINAL:
            sums_for(sums, run.key()).add(run, sign)
