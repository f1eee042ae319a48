"""Statistics: runs written through the center's real write paths, read back through the API and
the pages, agree with a direct count of the run rows."""

from __future__ import annotations

import asyncio
import math
import re

from sqlalchemy import select

from center import store
from center.intake import Intake
from center.metrics import CenterMetrics
from center.rollup import bucket_bounds, bucket_of
from center.runs import PlannedRun
from center.store.lease import acquire_lease
from center.tables import run_rollup, task_process
from protocol import statuses
from protocol.messages import RunFinished, RunRef, RunStarted
from tests.admin.seed import World, now_us
from tests.admin.test_pages import _session_client

TIMEOUT_S = 60.0
S = 1_000_000
# (status, duration ms) of the runs that agents report
REPORTED = [("success", 200 * (i + 1)) for i in range(20)] + [
    ("failed", 5_000),
    ("failed", 7_000),
    ("timeout", 60_000),
]


def _planned(task_id: int, aid: int, count: int, now: int) -> list[PlannedRun]:
    """Runs scheduled over the last three days, an hour and a bit apart."""
    first = now - 3 * 24 * 3600 * S
    return [
        PlannedRun(runid=f"{task_id}-{at}-{aid}-0-0", task_id=task_id, aid=aid, sched_us=at)
        for at in (first + i * 3_700 * S for i in range(count))
    ]


def _reports(run: PlannedRun, aid: int, status: str, ms: int, seq: int) -> list[tuple[int, object]]:
    ref = RunRef(runid=run.runid, task_id=run.task_id, sched_us=run.sched_us)
    start = run.sched_us + 40_000 + seq * 1000
    started = RunStarted(seq=seq, ref=ref, pid=100, start_us=start)
    finished = RunFinished(
        seq=seq + 1, ref=ref, status=status, start_us=start, end_us=start + ms * 1000, pid=100
    )
    return [(aid, started), (aid, finished)]


async def _write_history(engine, task_id: int, aid: int) -> None:
    """Every way the center ends runs: reports (some resent), skipped, killed before sent,
    missed, lost, and a late real end of a run written lost."""
    now = now_us()
    lease = await acquire_lease(engine, "test", now, 60 * S)
    assert lease is not None
    runs = _planned(task_id, aid, 40, now)
    fire = PlannedRun(
        runid=f"{task_id}-{now - S}-{aid}-0-0", task_id=task_id, aid=aid, sched_us=now - S
    )
    missed = [(fire, "no agent")]
    await store.insert_planned(engine, lease, runs, 0, now, missed=missed)
    intake = Intake(engine, CenterMetrics())
    for i, (status, ms) in enumerate(REPORTED):
        for aid_, msg in _reports(runs[i], aid, status, ms, 10 * i):
            intake.reports.add(aid_, msg)  # type: ignore[arg-type]
    await intake.flush_reports()
    for i in range(5):  # resent after a reconnect: counted once
        for aid_, msg in _reports(runs[i], aid, *REPORTED[i], 10 * i):
            intake.reports.add(aid_, msg)  # type: ignore[arg-type]
    await intake.flush_reports()
    await store.set_run_status(engine, [runs[30].runid, runs[31].runid], statuses.SKIPPED, now)
    planned = frozenset({statuses.PLANNED})
    await store.set_run_status(engine, [runs[32].runid], statuses.KILLED, now, only_from=planned)
    sent = [runs[33].runid, runs[34].runid]
    await store.set_run_status(engine, sent, statuses.DISPATCHED, now, only_from=planned)
    await store.record_lost(engine, lease, [(r, "agent gone", None) for r in sent], now)
    await store.record_lost(engine, lease, [(runs[34].runid, "again", None)], now)  # no-op
    for aid_, msg in _reports(runs[33], aid, "success", 900, 500):  # the real end, late
        intake.reports.add(aid_, msg)  # type: ignore[arg-type]
    await intake.flush_reports()
    # 23..29, 35 and 36 were never sent: missed
    await store.expire_planned(engine, runs[36].sched_us + 1, now)


async def _direct(engine, task_id: int) -> tuple[dict[str, int], list[int], list[int]]:
    """Final statuses counted, and durations and lateness of the runs that ran, from the rows."""
    c = task_process.c
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(c.status, c.start, c.end, c.sched_us).where(c.task_id == task_id)
            )
        ).all()
    counts: dict[str, int] = {}
    durations, lateness = [], []
    for status, start, end, sched in rows:
        if status not in statuses.FINAL:
            continue
        counts[status] = counts.get(status, 0) + 1
        if status in ("success", "failed", "timeout", "killed") and start:
            durations.append((end - start) // 1000)
            lateness.append(max(start - sched, 0) // 1000)
    return counts, sorted(durations), sorted(lateness)


def _in_bucket_of(value: float, exact: int) -> bool:
    low, high = bucket_bounds(bucket_of(exact))
    return low - 1e-6 <= value <= high


async def test_stats_agree_with_a_count_of_the_run_rows(api, world: World, app):
    """Counts by status, success rate, max duration equal the rows'; p50/p95 of duration and
    p95 of lateness fall in the bucket of the exact percentile; repeats counted once."""
    engine = app.state.engine
    task_id, aid = world.ids["rule_a"], world.ids["agent_a"]
    async with asyncio.timeout(TIMEOUT_S):
        await _write_history(engine, task_id, aid)
        counts, durations, lateness = await _direct(engine, task_id)
        reply = await api.get(f"/api/v1/rules/{task_id}/stats", headers=world.auth("viewer"))
    assert reply.status_code == 200, reply.text
    window = {w["window"]: w for w in reply.json()["windows"]}["30d"]
    assert counts == {
        "success": 21, "failed": 2, "timeout": 1, "skipped": 2, "killed": 1, "lost": 1,
        "missed": 10,
    }  # fmt: skip
    assert {s: n for s, n in window["by_status"].items() if n} == counts
    assert window["runs"] == sum(counts.values())
    meant = sum(counts.values()) - counts["skipped"]
    assert window["success_rate"] == counts["success"] / meant
    assert window["duration_max_ms"] == max(durations)
    for q, key in ((0.5, "duration_p50_ms"), (0.95, "duration_p95_ms")):
        exact = durations[math.ceil(q * len(durations)) - 1]
        assert _in_bucket_of(window[key], exact), (key, window[key], exact)
    exact_late = lateness[math.ceil(0.95 * len(lateness)) - 1]
    assert _in_bucket_of(window["lateness_p95_ms"], exact_late)
    trend = reply.json()["trend"]
    assert len(trend) == 30 and sum(p["runs"] for p in trend) == sum(counts.values())


async def test_group_stats_and_pages_show_the_rollups(api, world: World, app):
    """The group's statistics sum its rules; the rule page, group page and rules list show
    them (rate, strip of last outcomes linked to their runs), and other groups see none."""
    engine = app.state.engine
    task_id, aid = world.ids["rule_a"], world.ids["agent_a"]
    async with asyncio.timeout(TIMEOUT_S):
        await _write_history(engine, task_id, aid)
        group = await api.get(f"/api/v1/groups/{world.alpha}/stats", headers=world.auth("viewer"))
        other = await api.get(
            f"/api/v1/groups/{world.alpha}/stats", headers=world.auth("beta_admin")
        )
        beta = await api.get(f"/api/v1/rules/{task_id}/stats", headers=world.auth("beta_admin"))
        async with engine.connect() as conn:
            stored = (await conn.execute(select(run_rollup.c.n_success))).scalars().all()
    assert group.status_code == 200
    window = {w["window"]: w for w in group.json()["windows"]}["30d"]
    assert window["by_status"]["success"] == sum(stored) == 21
    assert (other.status_code, beta.status_code) == (404, 404)


async def test_rules_list_strip_and_rule_page(world: World, app):
    """The rules list shows each rule's last 20 outcomes (oldest first) and its 7-day success
    rate; the rule page and the group page have a statistics section with the trend chart."""
    engine = app.state.engine
    task_id, aid = world.ids["rule_a"], world.ids["agent_a"]
    async with asyncio.timeout(TIMEOUT_S):
        await _write_history(engine, task_id, aid)
        client = await _session_client(app, world, "viewer")
        async with client:
            rules = await client.get("/rules")
            rule = await client.get(f"/rules/{task_id}")
            group = await client.get(f"/groups/{world.alpha}")
            dashboard = await client.get("/")
    assert rules.status_code == rule.status_code == group.status_code == 200
    row = re.search(r"alpha job.*?</tr>", rules.text, re.S)
    assert row is not None
    strip = re.findall(r'<a href="/runs/(\d+)" class="st-(\w+)"', row.group(0))
    assert len(strip) == 20
    async with engine.connect() as conn:
        c = task_process.c
        last = (
            await conn.execute(
                select(c.id, c.status)
                .where(
                    c.task_id == task_id,
                    c.status.in_(sorted(statuses.FINAL)),
                    c.sched_us <= now_us(),
                )
                .order_by(c.sched_us.desc())
                .limit(20)
            )
        ).all()
    assert [(int(i), s) for i, s in strip] == [(int(i), s) for i, s in reversed(last)]
    assert "%" in row.group(0)
    for page in (rule, group):
        assert 'id="stats"' in page.text and "polyline" in page.text
    # The dashboard's runs of the last 24 h come from the rollups: the fire missed a second ago.
    assert re.search(r"missed 1\b", dashboard.text)


async def test_timeline_draws_runs_as_links_and_says_when_cut(world: World, app, monkeypatch):
    """The timeline has a bar per run of the window, each a link to its run, lanes per agent
    or per rule; over the cap it says it shows the first N; a bad window names the field."""
    from admin.services import stats as stats_service

    engine = app.state.engine
    task_id, aid = world.ids["rule_a"], world.ids["agent_a"]
    async with asyncio.timeout(TIMEOUT_S):
        await _write_history(engine, task_id, aid)
        client = await _session_client(app, world, "viewer")
        async with client:
            week = await client.get("/timeline?hours=96&lane=rule")
            agents_day = await client.get(f"/timeline?hours=96&agent={aid}")
            monkeypatch.setattr(stats_service, "TIMELINE_MAX_BARS", 3)
            cut = await client.get("/timeline?hours=96")
            bad = await client.get("/timeline?hours=abc")
            backwards = await client.get("/timeline?from=2026-01-02T00:00&to=2026-01-01T00:00")
    async with engine.connect() as conn:
        c = task_process.c
        rows = (await conn.execute(select(c.id).where(c.task_id == task_id))).scalars().all()
    assert week.status_code == agents_day.status_code == cut.status_code == 200
    linked = {int(i) for i in re.findall(r'<a href="/runs/(\d+)"><rect', week.text)}
    assert linked == set(rows)  # alpha's runs only (the viewer sees alpha), all within 4 days
    assert "alpha job" in week.text and 'class="st-success"' in week.text
    assert "host-a" in agents_day.text
    assert len(re.findall(r"<rect x=", cut.text)) == 3 and 'id="timeline-cut"' in cut.text
    assert bad.status_code == 422 and "hours" in bad.text
    assert backwards.status_code == 422 and "from" in backwards.text


async def test_rollups_built_again_from_the_rows_equal_the_kept_ones(world: World, app, db_url):
    """`unitedcron db rollups` (rebuild from the run rows) gives the rollups the center kept
    run by run: the incremental writes counted each run once."""
    from center.store.rollups import rebuild_all

    engine = app.state.engine
    async with asyncio.timeout(TIMEOUT_S):
        await _write_history(engine, world.ids["rule_a"], world.ids["agent_a"])
        kept = await _rollups(engine)
        assert await rebuild_all(db_url) == len(kept)
        assert await _rollups(engine) == kept


async def _rollups(engine) -> list[tuple]:
    columns = [c for c in run_rollup.c if c.name != "updated_us"]
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(*columns).order_by(run_rollup.c.task_id, run_rollup.c.hour_us)
        )
    return [tuple(r) for r in rows]
