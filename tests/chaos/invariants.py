"""The chaos run's invariants: pure functions of the run rows and the side-effect files."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from protocol import statuses
from protocol.messages import make_runid

# Each check returns a list of problems, one line per run or fire (empty: the invariant holds).
Row = Mapping[str, Any]
S = 1_000_000
RUN_KEY = ("task_id", "sched_us", "aid", "attempt", "instance")


def read_ran(files: Iterable[Path]) -> Counter[str]:
    """How many times each run id was appended to a side-effect file (a start of its command)."""
    ran: Counter[str] = Counter()
    for path in files:
        ran.update(line.strip() for line in path.read_text().splitlines() if line.strip())
    return ran


def duplicate_keys(rows: Iterable[Row]) -> list[str]:
    """Invariant 1 (database): no (task, scheduled time, agent, attempt, instance) twice."""
    seen = Counter(tuple(r[k] for k in RUN_KEY) for r in rows)
    return [f"run key {key} stored {n} times" for key, n in seen.items() if n > 1]


def started_twice(ran: Counter[str]) -> list[str]:
    """Invariant 1 (side effects): each run id's command started at most once."""
    return [f"{runid} ran {n} times" for runid, n in sorted(ran.items()) if n > 1]


def result_missing(
    ran: Iterable[str], rows: Mapping[str, Row], excused: Callable[[Row], bool]
) -> list[str]:
    """Invariant 2: every run that started has a row with a final status and its result.

    The commands exit 0 unless they are meant to fail (exit 1), so a run that ran ended
    `success`, or `failed` with its exit code; `excused` rows (e.g. `lost` when their agent
    was killed with SIGKILL while they ran) are reported apart, not here.
    """
    problems = []
    for runid in sorted(ran):
        row = rows.get(runid)
        if row is None:
            problems.append(f"{runid} ran but has no task_process row")
        elif not _has_result(row) and not excused(row):
            problems.append(
                f"{runid} ran but is {row['status']} (code {row['code']}, reason {row['reason']!r})"
            )
    return problems


def _has_result(row: Row) -> bool:
    if row["status"] == statuses.SUCCESS:
        return bool(row["code"] == 0)
    return row["status"] == statuses.FAILED and row["code"] not in (None, 0)


def unaccounted_fires(
    rows: Iterable[Row], targets: Mapping[int, Iterable[int]], start_us: int, end_us: int
) -> list[str]:
    """Invariant 3: each rule firing every second has, for every second in [start, end] and
    every target agent, exactly one attempt-0 row, whatever its status."""
    have = Counter((r["task_id"], r["sched_us"], r["aid"]) for r in rows if r["attempt"] == 0)
    problems = []
    first = -(-start_us // S) * S
    for task_id, aids in sorted(targets.items()):
        for sched_us in range(first, end_us + 1, S):
            for aid in aids:
                n = have[(task_id, sched_us, aid)]
                if n != 1:
                    problems.append(f"rule {task_id} fire {sched_us} agent {aid}: {n} rows")
    return problems


def unexplained(rows: Iterable[Row]) -> list[str]:
    """Every final row that is not a success says why: a reason, or an exit code if failed."""
    problems = []
    for r in rows:
        status = r["status"]
        if status == statuses.SUCCESS or status in statuses.ACTIVE:
            continue
        if r["reason"] or (status == statuses.FAILED and r["code"] not in (None, 0)):
            continue
        problems.append(f"{r['runid']} is {status} without a reason")
    return problems


def still_active(rows: Iterable[Row]) -> list[str]:
    """After the settle, nothing is left planned, dispatched or running."""
    return [f"{r['runid']} still {r['status']}" for r in rows if r["status"] in statuses.ACTIVE]


def retries_missing(
    rows: Iterable[Row],
    task_id: int,
    retries: int,
    end_us: int,
    excused: Callable[[Row, str], bool] = lambda row, runid: False,
) -> list[str]:
    """A run of a rule with retries that failed or was lost has its next attempt (unless
    `excused(row, next_runid)`)."""
    by_key = {(r["sched_us"], r["aid"], r["attempt"]): r for r in rows if r["task_id"] == task_id}
    problems = []
    for (sched_us, aid, attempt), r in sorted(by_key.items()):
        if sched_us > end_us or attempt >= retries:
            continue
        retried = r["status"] in (statuses.FAILED, statuses.LOST, statuses.TIMEOUT)
        if not retried or (sched_us, aid, attempt + 1) in by_key:
            continue
        next_runid = make_runid(task_id, sched_us, aid, attempt + 1, r["instance"])
        if not excused(r, next_runid):
            problems.append(f"{r['runid']} {r['status']} but attempt {attempt + 1} is missing")
    return problems


def by_status(rows: Iterable[Row]) -> dict[str, int]:
    counts = Counter(r["status"] for r in rows)
    return dict(sorted(counts.items()))
