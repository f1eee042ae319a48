"""Rules in: the crontab rows and their targets, and the notes the center writes back."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from center.rules import Rule, rule_from_row
from center.store._util import _chunks
from center.tables import (
    crontab,
    crontab_agent,
)


async def load_rules(engine: AsyncEngine, since_us: int | None = None) -> list[Rule]:
    """Every rule (or those updated after `since_us`), deleted ones included."""
    query = select(crontab)
    if since_us is not None:
        query = query.where(crontab.c.update_time > since_us)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
        targets = await _targets(conn, [r["id"] for r in rows] if since_us is not None else None)
    return [rule_from_row(dict(r), tuple(targets.get(r["id"], ()))) for r in rows]


async def _targets(conn: AsyncConnection, task_ids: list[int] | None) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    if task_ids is None:
        batches: Iterable[Any] = [select(crontab_agent)]
    else:
        batches = (
            select(crontab_agent).where(crontab_agent.c.task_id.in_(chunk))
            for chunk in _chunks(task_ids)
        )
    for query in batches:
        for task_id, aid in (await conn.execute(query)).all():
            out[task_id].append(aid)
    return out


FINGERPRINT_MOD = 1_000_000_007


async def rules_fingerprint(engine: AsyncEngine) -> tuple[int, ...]:
    """Changes when rows are hard-deleted or targets edited without touching update_time."""
    async with engine.connect() as conn:
        a = (
            await conn.execute(
                select(
                    func.count(),
                    # Modulo a prime: a sum of 100k µs timestamps would overflow 64 bits.
                    func.coalesce(func.sum(crontab.c.update_time % FINGERPRINT_MOD), 0),
                    func.coalesce(func.max(crontab.c.update_time), 0),
                    func.coalesce(func.sum(crontab.c.status), 0),
                )
            )
        ).one()
        b = (
            await conn.execute(
                select(
                    func.count(),
                    func.coalesce(
                        func.sum(
                            (crontab_agent.c.task_id * 7919 + crontab_agent.c.aid) % FINGERPRINT_MOD
                        ),
                        0,
                    ),
                ).select_from(crontab_agent)
            )
        ).one()
    return tuple(int(v) for v in (*a, *b))


async def set_rule_error(engine: AsyncEngine, task_id: int, error: str) -> None:
    """Store why a rule cannot be planned ("" clears it); never bumps update_time."""
    async with engine.begin() as conn:
        await conn.execute(
            update(crontab)
            .where(crontab.c.id == task_id, crontab.c.error != error[:500])
            .values(error=error[:500])
        )


async def set_rule_notice(engine: AsyncEngine, task_id: int, notice: str) -> None:
    """Store a non-fatal planning note on a rule ("" clears it); never bumps update_time."""
    async with engine.begin() as conn:
        await conn.execute(
            update(crontab)
            .where(crontab.c.id == task_id, crontab.c.notice != notice[:500])
            .values(notice=notice[:500])
        )
