"""Statistics' SQL: rollup rows of rules, the last outcomes of a page of rules, the timeline."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.queries import Row, in_scope
from center.rollup import COUNTED, Sums
from center.store._util import _chunks
from center.store.rollups import sums_of
from center.tables import RULE_RUNS_INDEX, agents, crontab, run_rollup, task_process
from protocol import statuses

_FINAL = sorted(statuses.FINAL)
_ACTIVE_NOW = [statuses.DISPATCHED, statuses.RUNNING]
# Rules per statement of the outcome strips (each a LIMIT on the index of the rule's runs).
_STRIP_RULES = 100


def rules_of_group(gid: int) -> Select[Any]:
    return select(crontab.c.id).where(crontab.c.gid == gid)


async def rollup_rows(
    conn: AsyncConnection, task_ids: Sequence[int] | Select[Any], since_us: int
) -> list[tuple[int, Sums]]:
    """(hour_us, sums) of the rules' rollups from `since_us` on, one row per hour: counts
    summed, maxima taken and histograms concatenated by the database (a group's 30 days are
    720 rows to read, not 720 per rule)."""
    c = run_rollup.c
    figures = []
    for name in ("dur", "late"):
        figures += [
            func.sum(c[f"{name}_n"]).label(f"{name}_n"),
            func.sum(c[f"{name}_sum_ms"]).label(f"{name}_sum_ms"),
            func.max(c[f"{name}_max_ms"]).label(f"{name}_max_ms"),
            func.group_concat(c[f"{name}_hist"]).label(f"{name}_hist"),
        ]
    query = (
        select(c.hour_us, *(func.sum(c[f"n_{s}"]).label(f"n_{s}") for s in COUNTED), *figures)
        .where(c.task_id.in_(task_ids), c.hour_us >= since_us)
        .group_by(c.hour_us)
    )
    return [(int(r["hour_us"]), sums_of(r)) for r in (await conn.execute(query)).mappings()]


async def success_counts(
    conn: AsyncConnection, task_ids: Sequence[int], since_us: int
) -> dict[int, tuple[int, int]]:
    """task_id → (successes, runs meant to run: all final but skipped) since `since_us`."""
    if not task_ids:
        return {}
    c = run_rollup.c
    meant = c.n_success + c.n_failed + c.n_timeout + c.n_killed + c.n_lost + c.n_missed
    query = (
        select(c.task_id, func.sum(c.n_success), func.sum(meant))
        .where(c.task_id.in_(list(task_ids)), c.hour_us >= since_us)
        .group_by(c.task_id)
    )
    return {int(t): (int(s or 0), int(m or 0)) for t, s, m in (await conn.execute(query)).all()}


async def last_outcomes(
    conn: AsyncConnection, task_ids: Sequence[int], now_us: int, count: int = 20
) -> dict[int, list[Row]]:
    """task_id → its last `count` finished runs (id, status, sched_us), oldest first: per rule
    a backward walk of the (task_id, sched_us, …) index, all rules in one statement."""
    out: dict[int, list[Row]] = defaultdict(list)
    tp = task_process.c
    for chunk in _chunks(list(task_ids), _STRIP_RULES):
        parts = [
            select(tp.task_id, tp.id, tp.status, tp.sched_us)
            .where(tp.task_id == task_id, tp.sched_us <= now_us, tp.status.in_(_FINAL))
            .order_by(tp.sched_us.desc())
            .limit(count)
            # MariaDB would rather range over (task_id, status) or sched_us and sort: a busy
            # rule's every final run read for 20 of them (rules list 364 ms at 10M runs).
            .with_hint(task_process, f"FORCE INDEX ({RULE_RUNS_INDEX})", "mysql")
            .subquery()
            for task_id in chunk
        ]
        if not parts:
            continue
        query = union_all(*(select(p) for p in parts))
        for row in (await conn.execute(query)).mappings():
            out[int(row["task_id"])].append(dict(row))
    for rows in out.values():
        rows.sort(key=lambda r: (r["sched_us"], r["id"]))
    return out


async def timeline_runs(
    conn: AsyncConnection,
    gids: frozenset[int] | None,
    from_us: int,
    to_us: int,
    *,
    lookback_us: int,
    limit: int,
    task_id: int | None = None,
    aid: int | None = None,
) -> list[Row]:
    """Runs that overlap [from_us, to_us), by scheduled time, at most `limit`: those
    scheduled in the window or up to `lookback_us` before it that end in it or later, and
    those still going that were scheduled earlier still; with their rule's and agent's name.

    task_process is read alone (a range of its scheduled-time index, stopped at the limit),
    the names after: joined in one statement, MariaDB may start from the rules and walk each
    rule's runs instead (seconds on a big history)."""
    tp = task_process.c
    base = select(tp.id, tp.task_id, tp.aid, tp.status, tp.sched_us, tp.start, tp.end)
    if gids is not None:
        base = base.where(tp.task_id.in_(select(crontab.c.id).where(in_scope(crontab.c.gid, gids))))
    if task_id is not None:
        base = base.where(tp.task_id == task_id)
    if aid is not None:
        base = base.where(tp.aid == aid)
    recent = base.where(
        tp.sched_us >= from_us - lookback_us,
        tp.sched_us < to_us,
        or_(tp.sched_us >= from_us, tp.end >= from_us, tp.status.in_(_ACTIVE_NOW)),
    )
    older = base.where(tp.status.in_(_ACTIVE_NOW), tp.sched_us < from_us - lookback_us)
    rows = [dict(r) for r in (await conn.execute(older.limit(limit))).mappings()]
    query = recent.order_by(tp.sched_us, tp.id).limit(limit + 1 - len(rows))
    rows += [dict(r) for r in (await conn.execute(query)).mappings()]
    rule_names = await _names(conn, crontab, {r["task_id"] for r in rows})
    agent_names = await _names(conn, agents, {r["aid"] for r in rows})
    for row in rows:
        row["rule_name"] = rule_names.get(row["task_id"], f"rule {row['task_id']}")
        row["agent_name"] = agent_names.get(row["aid"])
    return rows


async def _names(conn: AsyncConnection, table: Any, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    query = select(table.c.id, table.c.name).where(table.c.id.in_(sorted(ids)))
    return {int(i): str(n) for i, n in (await conn.execute(query)).all()}
