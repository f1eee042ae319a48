"""The alert checks' reads: failed runs, crash loops, lost agents, rules that did not start."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from center.alerts.model import (
    AGENT_OFFLINE,
    CRASH_LOOPING,
    DID_NOT_START,
    RUN_FAILED,
    RUN_TIMEOUT,
    AlertState,
    Channel,
    Finding,
    StateKey,
    iso_us,
    last_fire_us,
)
from center.calendars import Calendar, find_calendar
from center.errors import RuleError
from center.routing import AGENT_ENABLED, AGENT_UNREACHABLE
from center.store.calendars import load_calendars
from center.tables import agents, crontab, daemon_state, task_process
from center.timing import FireTimes, build_timing
from i18n.marks import N_
from protocol import statuses

_CHUNK = 500
_RUN_EVENTS = {statuses.FAILED: RUN_FAILED, statuses.TIMEOUT: RUN_TIMEOUT}


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def rule_subject(task_id: int) -> str:
    return f"rule:{task_id}"


def _run_query(after_us: int, until_us: int) -> Any:
    return (
        select(
            task_process.c.runid,
            task_process.c.task_id,
            task_process.c.aid,
            task_process.c.status,
            task_process.c.code,
            task_process.c.signal,
            task_process.c.reason,
            task_process.c.sched_us,
            task_process.c.start,
            task_process.c.end,
            task_process.c.attempt,
            task_process.c.trigger,
            crontab.c.name.label("rule_name"),
            crontab.c.gid,
            agents.c.name.label("agent_name"),
        )
        .select_from(task_process)
        .join(crontab, crontab.c.id == task_process.c.task_id)
        .outerjoin(agents, agents.c.id == task_process.c.aid)
        .where(task_process.c.updated_us > after_us, task_process.c.updated_us <= until_us)
        .order_by(task_process.c.updated_us, task_process.c.id)
    )


async def finished_runs(
    conn: AsyncConnection, after_us: int, until_us: int, open_rules: set[int]
) -> list[Finding]:
    """Failed and timed-out runs finished in (after_us, until_us]; successes of rules that
    have a failure alert open, which end it."""
    query = _run_query(after_us, until_us).where(task_process.c.status.in_(sorted(_RUN_EVENTS)))
    rows = list((await conn.execute(query)).mappings())
    for chunk in _chunks(sorted(open_rules)):
        more = _run_query(after_us, until_us).where(
            task_process.c.status == statuses.SUCCESS, task_process.c.task_id.in_(chunk)
        )
        rows += list((await conn.execute(more)).mappings())
    rows.sort(key=lambda r: (r["end"], r["runid"]))
    findings: list[Finding] = []
    for row in rows:
        findings += _run_findings(row)
    return findings


def _run_detail(row: Any) -> dict[str, Any]:
    return {
        "rule": {"id": row["task_id"], "name": row["rule_name"]},
        "agent": {"id": row["aid"], "name": row["agent_name"] or ""},
        "run": {
            key: row[key]
            for key in (
                "runid",
                "status",
                "code",
                "signal",
                "reason",
                "sched_us",
                "start",
                "end",
                "attempt",
                "trigger",
            )
        },
    }


def _run_findings(row: Any) -> list[Finding]:
    subject, detail = rule_subject(row["task_id"]), _run_detail(row)
    # Each summary whole, not built from a shared "rule … on agent …" part: it is translated
    # by matching the English sentence, and a part would match the whole sentence first.
    rule, task_id, runid = row["rule_name"], row["task_id"], row["runid"]
    agent = row["agent_name"] or row["aid"]
    if row["status"] == statuses.SUCCESS:
        summary = N_(f"rule {rule} ({task_id}) on agent {agent}: succeeded again (run {runid})")
        return [
            Finding(e, subject, row["gid"], summary, cleared=True, detail=detail)
            for e in (RUN_FAILED, RUN_TIMEOUT)
        ]
    if row["status"] == statuses.TIMEOUT:
        summary = N_(f"rule {rule} ({task_id}) on agent {agent}: timed out (run {runid})")
    else:
        why = row["reason"] or (
            N_(f"killed by signal {row['signal']}")
            if row["signal"]
            else N_(f"exit code {row['code']}")
        )
        summary = N_(f"rule {rule} ({task_id}) on agent {agent}: failed, {why} (run {runid})")
    event = _RUN_EVENTS[row["status"]]
    return [Finding(event, subject, row["gid"], summary, key=row["runid"], detail=detail)]


async def daemon_findings(conn: AsyncConnection) -> list[Finding]:
    """Every daemon instance set an agent reports: crash looping (an occurrence) or not."""
    query = (
        select(
            daemon_state.c.task_id,
            daemon_state.c.aid,
            daemon_state.c.crash_looping,
            daemon_state.c.last_exit,
            crontab.c.name,
            crontab.c.gid,
            agents.c.name.label("agent_name"),
        )
        .select_from(daemon_state)
        .join(crontab, crontab.c.id == daemon_state.c.task_id)
        .outerjoin(agents, agents.c.id == daemon_state.c.aid)
        .where(crontab.c.status == 1, crontab.c.is_daemon == 1)
    )
    out = []
    for row in (await conn.execute(query)).mappings():
        rule, task_id, agent = row["name"], row["task_id"], row["agent_name"] or row["aid"]
        looping = bool(row["crash_looping"])
        summary = (
            N_(
                f"daemon rule {rule} ({task_id}) on agent {agent}: crash looping, "
                f"last exit: {row['last_exit']}"
            )
            if looping
            else N_(f"daemon rule {rule} ({task_id}) on agent {agent}: runs steadily again")
        )
        detail = {
            "rule": {"id": row["task_id"], "name": row["name"]},
            "agent": {"id": row["aid"], "name": row["agent_name"] or ""},
            "last_exit": row["last_exit"],
        }
        subject = f"rule:{row['task_id']}/agent:{row['aid']}"
        out.append(
            Finding(CRASH_LOOPING, subject, row["gid"], summary, cleared=not looping, detail=detail)
        )
    return out


async def agent_findings(conn: AsyncConnection) -> list[Finding]:
    """Every approved agent: unreachable (an occurrence) or enabled (over)."""
    query = select(
        agents.c.id, agents.c.name, agents.c.gid, agents.c.status, agents.c.heart_beat_time
    ).where(agents.c.status.in_((AGENT_ENABLED, AGENT_UNREACHABLE)))
    out = []
    for row in (await conn.execute(query)).mappings():
        offline = row["status"] == AGENT_UNREACHABLE
        seen = iso_us(row["heart_beat_time"]) if row["heart_beat_time"] else "never"
        summary = (
            N_(f"agent {row['name']} ({row['id']}) is unreachable; last heartbeat {seen}")
            if offline
            else N_(f"agent {row['name']} ({row['id']}) is connected again")
        )
        detail = {
            "agent": {"id": row["id"], "name": row["name"]},
            "heart_beat_time": row["heart_beat_time"],
        }
        out.append(
            Finding(
                AGENT_OFFLINE,
                f"agent:{row['id']}",
                row["gid"],
                summary,
                cleared=not offline,
                detail=detail,
            )
        )
    return out


def open_run_rules(states: dict[StateKey, AlertState]) -> set[int]:
    """Rules with a run_failed or run_timeout alert open: their successes matter."""
    out = set()
    for (_cid, event, subject), state in states.items():
        if state.is_open and event in _RUN_EVENTS.values() and subject.startswith("rule:"):
            out.add(int(subject.removeprefix("rule:")))
    return out


# ---------------------------------------------------------------- did not start


async def _scheduled_rules(conn: AsyncConnection, gid: int) -> list[Any]:
    query = select(
        crontab.c.id,
        crontab.c.name,
        crontab.c.rule,
        crontab.c.timezone,
        crontab.c.create_time,
        crontab.c.update_time,
        crontab.c.gid,
        crontab.c.calendar,
        crontab.c.calendar_mode,
        crontab.c.calendar_fallback,
        crontab.c.jitter_s,
    ).where(
        crontab.c.gid == gid,
        crontab.c.status == 1,
        crontab.c.is_daemon == 0,
        crontab.c.rule != "",
        crontab.c.error == "",
    )
    return list((await conn.execute(query)).mappings())


def _timing(row: Any, calendars: dict[tuple[int, str], Calendar]) -> FireTimes:
    """The rule's real fire times: H, calendar and jitter, as the planner has them."""
    name = row["calendar"]
    return build_timing(
        row["rule"],
        row["timezone"] or "UTC",
        seed=row["id"],
        jitter_s=row["jitter_s"],
        calendar=find_calendar(name, row["gid"], calendars) if name else None,
        mode=row["calendar_mode"],
        fallback=row["calendar_fallback"],
    )


def _expected(
    rules: list[Any],
    before_us: int,
    channel: Channel,
    calendars: dict[tuple[int, str], Calendar],
) -> dict[int, tuple[Any, int]]:
    """Each rule's last fire that should have started by now: {task_id: (row, fire µs)}."""
    out = {}
    for row in rules:
        try:
            schedule = _timing(row, calendars)
        except RuleError:
            continue  # the center reports it in crontab.error
        # Only fires after the rule (or its last change) and the channel existed count.
        not_before = max(row["create_time"], row["update_time"], channel.create_time)
        fire = last_fire_us(schedule, before_us, not_before)
        if fire is not None:
            out[row["id"]] = (row, fire)
    return out


async def _runs_at(conn: AsyncConnection, pairs: list[tuple[int, int]]) -> dict[Any, list[Any]]:
    found: dict[Any, list[Any]] = defaultdict(list)
    for chunk in _chunks(pairs):
        query = select(
            task_process.c.task_id,
            task_process.c.sched_us,
            task_process.c.start,
            task_process.c.status,
            task_process.c.reason,
        ).where(tuple_(task_process.c.task_id, task_process.c.sched_us).in_(list(chunk)))
        for row in (await conn.execute(query)).mappings():
            found[(row["task_id"], row["sched_us"])].append(row)
    return found


def _why_not(runs: list[Any]) -> str:
    if not runs:
        return N_("no run was recorded for it (is a center leading? is an agent approved?)")
    return "; ".join(
        f"{r['status']}" + (f": {r['reason']}" if r["reason"] else "") for r in runs[:5]
    )


async def did_not_start(conn: AsyncConnection, channel: Channel, now_us: int) -> list[Finding]:
    """For each scheduled rule of the channel's group: did its last fire (older than the
    channel's grace) start on some agent? Not started: an occurrence; started: over."""
    expected = _expected(
        await _scheduled_rules(conn, channel.gid),
        now_us - channel.grace_s * 1_000_000,
        channel,
        await load_calendars(conn, channel.gid),
    )
    runs = await _runs_at(conn, [(task_id, fire) for task_id, (_r, fire) in expected.items()])
    out = []
    for task_id, (row, fire) in expected.items():
        got = runs.get((task_id, fire), [])
        started = any(r["start"] > 0 for r in got)
        rule, at = row["name"], iso_us(fire)
        summary = (
            N_(f"rule {rule} ({task_id}): started for its fire at {at}")
            if started
            else N_(
                f"rule {rule} ({task_id}): did not start within {channel.grace_s} s of its "
                f"fire at {at}: {_why_not(got)}"
            )
        )
        detail = {
            "rule": {"id": task_id, "name": row["name"]},
            "fire_us": fire,
            "fire": iso_us(fire),
        }
        out.append(
            Finding(
                DID_NOT_START,
                rule_subject(task_id),
                channel.gid,
                summary,
                key=str(fire),
                cleared=started,
                channel_id=channel.id,
                detail=detail,
            )
        )
    return out
