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

from center.rollup import HOUR_US, RunFacts, Sums, sums_for
from protocol import statuses

# A start never overwrites a running or final row (a late start after the end, or a repeat).
STARTED_GUARD = statuses.FINAL | {statuses.RUNNING}
# An agent's own final status wins over a `lost` or `missed` the center wrote without hearing
# from it (a result that came late; a run sent by a leader that died before writing it sent,
# see DispatchMarks); never over another final status.
FINISHED_GUARD = statuses.FINAL - {statuses.LOST, statuses.MISSED}

Row = dict[str, Any]


# A run's row as read (and locked) before the write: (id, runid, task_id, sched_us, status,
# aid), as the store's read returns it; a tuple, not an object: one per reported run.
StoredRun = tuple[int, str, int, int, str, int]


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


def stored_facts(run: StoredRun) -> RunFacts:
    """A stored row as rollups see it. Without its times: a stored row is only ever taken
    back from a rollup when it was lost, and a lost run has no duration nor lateness."""
    _row_id, runid, task_id, sched_us, status, aid = run
    return RunFacts(runid, task_id, sched_us, status, 0, 0, aid)


def plan_writes(
    stored: Mapping[str, StoredRun], started: Iterable[Row], finished: Iterable[Row]
) -> ReportWrites:
    """The writes of `started` then `finished` report rows on runs that were `stored`
    (absent: no row). A run that finished within the batch takes only its finish (which
    carries every column its start does): one write, not two."""
    finished = list(finished)
    done = {row["runid"] for row in finished}
    out = ReportWrites()
    state: dict[str, _State] = {runid: (run[4], run[5], run) for runid, run in stored.items()}
    _apply(out, stored, state, (r for r in started if r["runid"] not in done), started=True)
    _apply(out, stored, state, finished, started=False)
    return out


# A run's state as the rows before this one left it: its status, its agent, and where its
# facts come from (its stored row, or the report row that last wrote it; facts made only
# when a final status must be taken back, which is rare).
_State = tuple[str, int, StoredRun | Row]


def _apply(
    out: ReportWrites,
    stored: Mapping[str, StoredRun],
    state: dict[str, _State],
    rows: Iterable[Row],
    *,
    started: bool,
) -> None:
    """Decide each row in order against the state the rows before it left."""
    guard = STARTED_GUARD if started else FINISHED_GUARD
    inserts = out.insert_started if started else out.insert_finished
    updates: dict[str, tuple[int, Row]] = {}
    sums, final = out.sums, statuses.FINAL
    for row in rows:
        runid, status = row["runid"], row["status"]
        had = stored.get(runid)
        if had is None:
            inserts.append(row)  # the upsert decides repeats in SQL; rollups follow below
        old = state.get(runid)
        # `rollup.reported(guard)`, inline (once per report): a guarded status, or another
        # agent's row, keeps the row as it is (a repeat, a late start, another agent's report).
        if old is not None and (old[0] in guard or old[1] != row["aid"]):
            continue
        state[runid] = (status, row["aid"], row)
        if had is not None:
            updates[runid] = (had[0], row)  # a later report of it wins
        if old is not None and old[0] != status and old[0] in final:
            facts = facts_of(old[2]) if isinstance(old[2], dict) else stored_facts(old[2])
            sums_for(sums, facts.key()).add(facts, -1)  # it moves to its new status
        if status in final and (old is None or old[0] != status):
            _count_row(sums, row)  # a start is never final: it counts nothing
    (out.update_started if started else out.update_finished).extend(updates.values())


def _count_row(sums: dict[tuple[int, int], Sums], row: Row) -> None:
    """A report row that made its run final, counted: `Sums.add(facts_of(row), +1)` without
    making the facts (once per finished run)."""
    sched_us = row["sched_us"]
    key = (row["task_id"], sched_us - sched_us % HOUR_US)
    start_us, end_us = row.get("start") or 0, row.get("end") or 0
    sums_for(sums, key).add_times(row["status"], sched_us, start_us, end_us, +1)
