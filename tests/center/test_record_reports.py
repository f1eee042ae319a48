"""Agents' reports written by the store: a final row is never overwritten by a late start or a
repeat, another agent's report changes nothing, a run with no row gets one, and the rollups
always agree with a direct count of the run rows (SQLite and MariaDB)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from center import intake as intake_module
from center import store
from center.intake import Intake
from center.metrics import CenterMetrics
from center.report_buffer import ReportBuffer
from center.report_writes import split_by_rule
from center.rollup import HOUR_US, RunFacts, Sums
from center.runs import PlannedRun, plan_run
from center.store import _prepared as prepared_module
from center.store import reports as reports_module
from center.store._prepared import _render_rows
from center.store.db import is_mysql
from center.store.rollups import fold, sums_of
from center.tables import run_rollup, task_output, task_process
from protocol import statuses
from protocol.messages import Message, RunFinished, RunOutput, RunStarted

TIMEOUT_S = 60.0
S = 1_000_000
T0 = 1_767_225_600_000_000  # the start of an hour
TIMED = ("success", "failed", "timeout", "killed")


def _started(run: PlannedRun, *, start: int = 0, pid: int = 100) -> RunStarted:
    return RunStarted(seq=1, ref=run.ref, pid=pid, start_us=start or run.sched_us + 2_000)


def _finished(run: PlannedRun, status: str = "success", *, ms: int = 300) -> RunFinished:
    start = run.sched_us + 2_000
    return RunFinished(
        seq=2, ref=run.ref, status=status, start_us=start, end_us=start + ms * 1000, pid=100
    )


async def _report(engine: AsyncEngine, *reports: tuple[int, Message]) -> None:
    """One batch, as the intake builds and writes it."""
    batch = ReportBuffer.build(list(reports), T0)
    async with asyncio.timeout(TIMEOUT_S):
        await store.record_reports(engine, batch.started, batch.finished, batch.chunks)


async def _plan(engine: AsyncEngine, runs: list[PlannedRun], status: str = "") -> None:
    """Planned rows (as the leader writes them), moved on to `status`."""
    async with asyncio.timeout(TIMEOUT_S):
        lease = await store.acquire_lease(engine, "test", T0, 3600 * S)
        assert lease is not None
        await store.insert_planned(engine, lease, runs, 0, T0)
        if status:
            await store.set_run_status(engine, [r.runid for r in runs], status, T0)


async def _rows(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    c = task_process.c
    query = select(c.runid, c.task_id, c.sched_us, c.aid, c.status, c.pid, c.start, c.end)
    async with asyncio.timeout(TIMEOUT_S), engine.connect() as conn:
        return {r["runid"]: dict(r) for r in (await conn.execute(query)).mappings()}


async def _rollups(engine: AsyncEngine) -> dict[tuple[int, int], Sums]:
    async with asyncio.timeout(TIMEOUT_S), engine.connect() as conn:
        rows = (await conn.execute(select(run_rollup))).mappings().all()
    return {(r["task_id"], r["hour_us"]): sums_of(r) for r in rows}


def _direct(rows: dict[str, dict[str, Any]]) -> dict[tuple[int, int], Sums]:
    """The rollups a count of the final run rows gives."""
    out: dict[tuple[int, int], Sums] = {}
    for r in rows.values():
        if r["status"] in statuses.FINAL:
            facts = RunFacts(
                r["runid"], r["task_id"], r["sched_us"], r["status"], r["start"], r["end"]
            )
            out.setdefault(facts.key(), Sums()).add(facts, +1)
    return out


def _same(stored: dict[tuple[int, int], Sums], direct: dict[tuple[int, int], Sums]) -> None:
    def shape(sums: dict[tuple[int, int], Sums]) -> dict[Any, Any]:
        return {
            key: (
                {st: n for st, n in s.counts.items() if n},
                (s.duration.n, s.duration.sum_ms, s.duration.max_ms, s.duration.hist),
                (s.lateness.n, s.lateness.sum_ms, s.lateness.max_ms, s.lateness.hist),
            )
            for key, s in sums.items()
            if s.runs
        }

    assert shape(stored) == shape(direct)


async def test_start_and_end_in_one_batch_write_the_final_row_once(engine: AsyncEngine):
    """A run that started and ended within one batch is final with both reports' columns."""
    run = plan_run(7, T0 + S, 1)
    await _plan(engine, [run], statuses.DISPATCHED)
    await _report(engine, (1, _started(run)), (1, _finished(run, "failed", ms=1500)))
    row = (await _rows(engine))[run.runid]
    assert (row["status"], row["pid"], row["end"] - row["start"]) == ("failed", 100, 1_500_000)
    rollups = await _rollups(engine)
    assert rollups[(7, T0)].counts == {"failed": 1}
    assert rollups[(7, T0)].duration.max_ms == 1500


async def test_late_start_and_repeats_never_overwrite_a_final_row(engine: AsyncEngine):
    """A start that arrives after the end (later batch, or later in the same batch), and the
    end resent, leave the final row and its count as they were."""
    a, b = plan_run(7, T0 + S, 1), plan_run(7, T0 + 2 * S, 1)
    await _plan(engine, [a, b], statuses.DISPATCHED)
    await _report(engine, (1, _finished(a)), (1, _finished(b)), (1, _started(b, pid=9)))
    await _report(engine, (1, _started(a, pid=9)), (1, _finished(a, "failed")))
    await _report(engine, (1, _finished(b, "timeout")), (1, _finished(b, "killed")))
    rows = await _rows(engine)
    assert [(rows[r.runid]["status"], rows[r.runid]["pid"]) for r in (a, b)] == [
        ("success", 100),
        ("success", 100),
    ]
    assert (await _rollups(engine))[(7, T0)].counts == {"success": 2}


async def test_another_agents_report_changes_nothing(engine: AsyncEngine):
    """Agent 2 reporting agent 1's run (start or end) leaves the row dispatched."""
    run = plan_run(7, T0 + S, 1)
    await _plan(engine, [run], statuses.DISPATCHED)
    await _report(engine, (2, _started(run)))
    await _report(engine, (2, _finished(run)))
    assert (await _rows(engine))[run.runid]["status"] == statuses.DISPATCHED
    assert await _rollups(engine) == {}


async def test_runs_with_no_row_are_inserted_and_counted(engine: AsyncEngine):
    """A report of a run the store has no row of writes one: running, or final and counted
    once even when resent in the same batch."""
    a, b = plan_run(8, T0 + S, 1), plan_run(8, T0 + 2 * S, 1)
    await _report(engine, (1, _started(a)), (1, _finished(b)), (1, _finished(b, "failed")))
    rows = await _rows(engine)
    assert (rows[a.runid]["status"], rows[b.runid]["status"]) == ("running", "success")
    assert (await _rollups(engine))[(8, T0)].counts == {"success": 1}


@pytest.mark.parametrize("verdict", [statuses.LOST, statuses.MISSED])
async def test_a_late_real_end_moves_a_lost_or_missed_run(engine: AsyncEngine, verdict: str):
    """The agent's end of a run the center wrote lost (or missed: a leader died before it
    wrote the run sent, and the next found it planned past the grace) replaces it, and its
    count moves."""
    run = plan_run(7, T0 + S, 1)
    await _plan(engine, [run], verdict)
    assert (await _rollups(engine))[(7, T0)].counts == {verdict: 1}
    await _report(engine, (1, _started(run)))  # a start never revives it
    assert (await _rows(engine))[run.runid]["status"] == verdict
    await _report(engine, (1, _finished(run)))
    assert (await _rows(engine))[run.runid]["status"] == statuses.SUCCESS
    counts = (await _rollups(engine))[(7, T0)].counts
    assert {s: n for s, n in counts.items() if n} == {"success": 1}


async def test_an_end_after_a_lost_end_in_one_batch_wins(engine: AsyncEngine):
    """An agent's `lost` end followed by its real end in the same batch: the real one stays
    (as the guarded upsert would leave it), counted once."""
    run = plan_run(7, T0 + S, 1)
    await _plan(engine, [run], statuses.RUNNING)
    await _report(engine, (1, _finished(run, "lost")), (1, _finished(run, "timeout", ms=7)))
    row = (await _rows(engine))[run.runid]
    assert (row["status"], row["end"] - row["start"]) == ("timeout", 7000)
    counts = (await _rollups(engine))[(7, T0)].counts
    assert {s: n for s, n in counts.items() if n} == {"timeout": 1}


async def test_any_output_text_is_stored_exactly(engine: AsyncEngine):
    """Quotes, backslashes, percent signs, NUL, placeholders and non-ASCII in a run's output
    and reason come back as they were sent (MySQL's values are rendered by the store)."""
    run = plan_run(7, T0 + S, 1)
    await _plan(engine, [run], statuses.DISPATCHED)
    output = "it's 100% \\ done\x00 中文 \"q\" %s %(x)s %% \\' -- \n\r\x1a 😀".encode()
    reason = "killed: 'x' % \\"
    end = RunFinished(
        seq=2, ref=run.ref, status="killed", start_us=1, end_us=2, output=output, reason=reason
    )
    await _report(engine, (1, end))
    async with asyncio.timeout(TIMEOUT_S), engine.connect() as conn:
        c = task_process.c
        row = (await conn.execute(select(c.result, c.reason).where(c.runid == run.runid))).one()
    assert (row.result, row.reason) == (output.decode(), reason)


def _model(rows: dict[str, dict[str, Any]], batch: list[tuple[int, Message]]) -> None:
    """The reports' meaning, written plainly: the start of a run that ends in the same batch is
    dropped; a report writes where there is no row, or where the row is the reporter's and
    not guarded (a start: running or final; an end: final but lost)."""
    ended = {m.ref.runid for _, m in batch if isinstance(m, RunFinished)}
    starts: list[tuple[int, RunStarted | RunFinished]] = [
        (a, m) for a, m in batch if isinstance(m, RunStarted) and m.ref.runid not in ended
    ]
    ends = [(a, m) for a, m in batch if isinstance(m, RunFinished)]
    for aid, msg in [*starts, *ends]:
        final = isinstance(msg, RunFinished)
        guard = statuses.FINAL - {"lost", "missed"} if final else statuses.FINAL | {"running"}
        row = rows.get(msg.ref.runid)
        if row is not None and (row["status"] in guard or row["aid"] != aid):
            continue
        ref = msg.ref
        new = {"runid": ref.runid, "task_id": ref.task_id, "sched_us": ref.sched_us, "aid": aid}
        new |= row or {}
        new |= {"status": "running", "pid": msg.pid, "start": msg.start_us}
        if isinstance(msg, RunFinished):
            new |= {"status": msg.status, "end": msg.end_us}
        new.setdefault("end", 0)
        rows[ref.runid] = new


def _random_batches(rng: random.Random, runs: list[PlannedRun]) -> list[list[Any]]:
    reports: list[tuple[int, Message]] = []
    for run in runs:
        aid = run.aid if rng.random() < 0.9 else run.aid + 1  # now and then a foreign report
        if rng.random() < 0.7:
            reports.append((aid, _started(run, pid=rng.randint(1, 999))))
        for _ in range(rng.choice((0, 1, 1, 1, 2))):
            status = rng.choice(("success", "success", "failed", "timeout", "killed", "lost"))
            reports.append((aid, _finished(run, status, ms=rng.randint(0, 90_000))))
    rng.shuffle(reports)
    cuts = sorted(rng.sample(range(1, len(reports)), 5))
    return [reports[i:j] for i, j in zip([0, *cuts], [*cuts, len(reports)], strict=True)]


@pytest.mark.parametrize(("seed", "writers"), [(1, 1), (2, 1), (3, 1), (1, 3), (2, 2)])
async def test_random_reports_match_the_model_and_the_count(
    engine: AsyncEngine, monkeypatch, seed: int, writers: int
):
    """Random batches of starts, ends, repeats and foreign reports, on runs planned,
    dispatched, running, lost, missed or never planned, two hours apart: each row is what the plain
    model says, and the rollups equal a direct count of the rows. Also with every batch
    written by several transactions at once (MySQL; SQLite writes one)."""
    if writers > 1:
        monkeypatch.setattr(reports_module, "SPLIT_FROM", 1)
        monkeypatch.setattr(reports_module, "WRITERS", writers)
    rng = random.Random(seed)
    runs = [plan_run(7 + i % 3, T0 + (i % 2) * HOUR_US + i * S, 1 + i % 2) for i in range(60)]
    planned, unknown = runs[:50], runs[50:]
    await _plan(engine, planned)
    moved = (statuses.DISPATCHED, statuses.LOST, statuses.RUNNING, statuses.MISSED)
    for part, status in enumerate(moved):
        runids = [r.runid for r in planned[part + 1 :: 5]]
        async with asyncio.timeout(TIMEOUT_S):
            await store.set_run_status(engine, runids, status, T0)
    expected = await _rows(engine)
    for batch in _random_batches(rng, planned + unknown):
        await _report(engine, *batch)
        _model(expected, batch)
    rows = await _rows(engine)
    assert rows == expected
    _same(await _rollups(engine), _direct(rows))


async def _flush_all(intake: Intake) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while await intake.flush_reports() is not None:
            pass


async def test_each_stored_outcome_is_said_once_in_order(engine: AsyncEngine, monkeypatch):
    """With batches queued behind each other, a batch's run.finished lines are said while the
    next one is written; every stored run gets its line once, in order, and a failed write
    says none of its own."""
    monkeypatch.setattr(intake_module, "REPORT_BATCH", 4)
    monkeypatch.setattr(intake_module, "SAY_SLICE", 1)
    runs = [plan_run(7, T0 + i * S, 1) for i in range(10)]
    await _plan(engine, runs, statuses.DISPATCHED)
    intake = Intake(engine, CenterMetrics())
    real, calls = store.record_reports, []

    async def flaky(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("database away")
        await real(*args)

    monkeypatch.setattr(store, "record_reports", flaky)
    for run in runs:
        intake.add(1, _finished(run))
    with capture_logs() as logs:
        async with asyncio.timeout(TIMEOUT_S):
            await intake.flush_reports()
            with pytest.raises(OSError):
                await intake.flush_reports()
        said = [e["runid"] for e in logs if e["event"] == "run.finished"]
        assert said == [r.runid for r in runs[:4]]
        await _flush_all(intake)
    said = [e["runid"] for e in logs if e["event"] == "run.finished"]
    assert said == [r.runid for r in runs]
    assert {r["status"] for r in (await _rows(engine)).values()} == {"success"}


async def test_concurrent_folds_into_new_rollup_rows_all_count(engine: AsyncEngine):
    """Writers adding to the same rollup rows at once, rows that do not exist yet: every
    writer's counts, sums and histogram buckets are in the end (none overwrites another)."""
    runs = [
        RunFacts(f"r{i}", 7 + i % 3, T0 + 5 * HOUR_US + i, "success", 1, 2_001 + i * 1000)
        for i in range(6)
    ]
    delta: dict[tuple[int, int], Sums] = {}
    for run in runs:
        delta.setdefault(run.key(), Sums()).add(run, +1)

    ready = asyncio.Barrier(4)

    async def add_once() -> None:
        async with engine.begin() as conn:
            await conn.execute(select(1))  # connected, in a transaction: start together
            await ready.wait()
            await fold(conn, delta, T0)

    async with asyncio.timeout(TIMEOUT_S):
        await asyncio.gather(*(add_once() for _ in range(4)))
    stored = await _rollups(engine)
    for key, sums in delta.items():
        assert stored[key].counts == {"success": 4 * sums.counts["success"]}
        assert stored[key].duration.n == 4 * sums.duration.n
        assert stored[key].duration.hist == [4 * n for n in sums.duration.hist]
        assert stored[key].duration.max_ms == sums.duration.max_ms


async def test_a_batch_sent_in_several_statements_is_whole(engine: AsyncEngine, monkeypatch):
    """A batch too big for one statement (MySQL's rendered rows are cut into pieces) writes
    every run, and rows cut at any size render to the same text."""
    rows = [(1, "a'b", None), (22, "%s\\", 3), (333, "", -4)]
    whole = ",".join(_render_rows(rows, lambda s: s.replace("'", "\\'"), 10_000))
    for size in (1, 12, 20, 40):
        pieces = list(_render_rows(rows, lambda s: s.replace("'", "\\'"), size))
        assert ",".join(pieces) == whole and len(pieces) >= (3 if size < 12 else 1)
    monkeypatch.setattr(prepared_module, "_STATEMENT_CHARS", 3_000)
    runs = [plan_run(7, T0 + i * S, 1) for i in range(40)]
    await _plan(engine, runs, statuses.DISPATCHED)
    await _report(engine, *[(1, _finished(run)) for run in runs])
    assert {r["status"] for r in (await _rows(engine)).values()} == {"success"}
    assert (await _rollups(engine))[(7, T0)].counts == {"success": 40}


def _rule_rows(*rules: int) -> list[dict[str, Any]]:
    return [{"task_id": t, "runid": f"r{i}"} for i, t in enumerate(rules)]


@pytest.mark.parametrize(
    ("started", "finished", "parts", "want"),
    [
        ((), (), 2, []),
        ((7, 8), (8, 7), 1, [((7, 8), (8, 7))]),
        ((7, 8), (8, 7), 2, [((7,), (7,)), ((8,), (8,))]),
        ((9, 7, 8, 7), (8, 9), 2, [((7, 8, 7), (8,)), ((9,), (9,))]),
        ((1, 2, 3, 4, 5), (), 2, [((1, 2, 3), ()), ((4, 5), ())]),
        ((5,), (5, 5), 3, [((5,), (5, 5))]),
        ((1, 2), (3,), 5, [((1,), ()), ((2,), ()), ((), (3,))]),
    ],
)
def test_a_batch_splits_by_ranges_of_rules_in_order(started, finished, parts, want):
    """Each part holds whole rules (a rule's reports in their order), rules in ranges of
    about equal size, no empty part: parts share no run and no rollup row."""
    got = split_by_rule(_rule_rows(*started), _rule_rows(*finished), parts)
    shape = [(tuple(r["task_id"] for r in s), tuple(r["task_id"] for r in f)) for s, f in got]
    assert shape == want


async def test_a_batch_whose_part_failed_counts_each_run_once_when_written_again(
    engine: AsyncEngine, monkeypatch
):
    """A batch written by several transactions (MySQL) where one part fails: the call fails
    once every part has ended; written again whole, each run's row is its end, each run
    counts once in the rollups (the parts that had committed are repeats), and its output
    chunk is stored once."""
    monkeypatch.setattr(reports_module, "SPLIT_FROM", 1)
    monkeypatch.setattr(reports_module, "WRITERS", 3)
    runs = [plan_run(7 + i % 3, T0 + i * S, 1) for i in range(30)]
    await _plan(engine, runs, statuses.DISPATCHED)
    batch: list[tuple[int, Message]] = [(1, _started(run)) for run in runs]
    batch += [(1, _finished(run)) for run in runs[::2]]
    batch.append((1, RunOutput(runid=runs[1].runid, offset=0, data=b"half way\n")))
    real, failed = reports_module._record, []

    async def one_part_fails(engine: AsyncEngine, started: Any, finished: Any, chunks: Any):
        if not failed and any(row["task_id"] == 8 for row in [*started, *finished]):
            failed.append(1)
            raise OSError("database away")
        await real(engine, started, finished, chunks)

    monkeypatch.setattr(reports_module, "_record", one_part_fails)
    with pytest.raises(OSError):
        await _report(engine, *batch)
    written = {r["task_id"] for r in (await _rows(engine)).values() if r["status"] != "dispatched"}
    assert written == ({7, 9} if is_mysql(engine) else set())  # the other parts committed
    await _report(engine, *batch)
    rows = await _rows(engine)
    ended = {run.runid for run in runs[::2]}
    assert {r["runid"]: r["status"] for r in rows.values()} == {
        run.runid: "success" if run.runid in ended else "running" for run in runs
    }
    _same(await _rollups(engine), _direct(rows))
    async with asyncio.timeout(TIMEOUT_S), engine.connect() as conn:
        chunks = (await conn.execute(select(task_output.c.runid, task_output.c.data))).all()
    assert [tuple(c) for c in chunks] == [(runs[1].runid, b"half way\n")]  # written once


def test_a_batch_keeps_the_start_rows_only_of_runs_that_did_not_end_in_it():
    """A run that starts and ends within one batch is written by its end alone (which
    `plan_writes` would decide anyway); every start still counts in the lateness metric."""
    ended, running = plan_run(1, T0, 1), plan_run(2, T0, 1)
    batch = ReportBuffer.build(
        [(1, _started(ended)), (1, _finished(ended)), (1, _started(running))], T0
    )
    assert [row["runid"] for row in batch.started] == [running.runid]
    assert [row["runid"] for row in batch.finished] == [ended.runid]
    assert dict(batch.acks) == {1: [1, 2, 1]}
    metrics = CenterMetrics()
    metrics.observe_reports(batch)
    count = metrics.registry.get_sample_value("unitedcron_start_lateness_seconds_count")
    assert count == 2


def test_a_finish_standing_for_its_unsent_start_counts_in_the_lateness_metric():
    """An agent sends no start for a run that ended before its start was due to go
    (`start_unsent`): its finish counts in the lateness metric once; a finish whose start was
    sent (in this batch or an earlier one) does not count again."""
    alone, started, earlier = (plan_run(i, T0, 1) for i in (1, 2, 3))
    late_ms = 40
    unsent = dataclasses.replace(
        _finished(alone), start_us=alone.sched_us + late_ms * 1000, start_unsent=True
    )
    batch = ReportBuffer.build(
        [(1, unsent), (1, _started(started)), (1, _finished(started)), (1, _finished(earlier))],
        T0,
    )
    metrics = CenterMetrics()
    metrics.observe_reports(batch)
    sample = metrics.registry.get_sample_value
    assert sample("unitedcron_start_lateness_seconds_count") == 2
    # 40 ms for the unsent start, 2 ms for the sent one (`_started`)
    assert sample("unitedcron_start_lateness_seconds_sum") == pytest.approx(0.042)
