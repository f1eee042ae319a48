"""The center's rules poll reads groups' calendars from the store: a rule naming one is
planned by it, re-planned when it changes, and marked in error when it goes (real database)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center.service import CenterService
from center.tables import calendar
from tests.integration.cluster import add_group, add_rule, center_config, now_us, rule_row

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()) * 1_000_000


async def _set_calendar(engine: AsyncEngine, gid: int, include: str, *, new: bool = False) -> None:
    async with engine.begin() as conn:
        if new:
            values = {"gid": gid, "name": "freeze", "base": "cn-workdays", "exclude": ""}
            await conn.execute(insert(calendar).values(**values, include=include, create_time=1))
        stmt = update(calendar).where(calendar.c.gid == gid, calendar.c.name == "freeze")
        await conn.execute(stmt.values(include=include, update_time=now_us()))


async def test_rules_poll_follows_group_calendars(db_url: str, engine: AsyncEngine):
    gid = await add_group(engine)
    await _set_calendar(engine, gid, "2026-10-03", new=True)
    task_id = await add_rule(
        engine, [], gid=gid, rule="0 9 * * *", timezone="Asia/Shanghai", calendar="freeze"
    )
    service = CenterService(center_config(db_url), engine=engine)
    async with asyncio.timeout(20):
        await service._rules_once()
        times = service.rulebook.schedules[task_id]
        assert times.next_fire_us(_at("2026-09-30T10:00")) == _at("2026-10-03T09:00")
        await _set_calendar(engine, gid, "")
        await service._rules_once()
        moved = service.rulebook.schedules[task_id]
        assert moved.next_fire_us(_at("2026-09-30T10:00")) == _at("2026-10-08T09:00")
        async with engine.begin() as conn:
            await conn.execute(delete(calendar).where(calendar.c.gid == gid))
        await service._rules_once()
        assert task_id not in service.rulebook.schedules
        row = await rule_row(engine, task_id)
        assert row["error"].startswith("calendar: no calendar 'freeze'")
