"""calendar_ending end to end: the leader's real alert loop reads real rules, workflows and a
group calendar, and tells a webhook (English) and a DingTalk stand-in (Chinese); pausing the
rule recovers it. `now` is set near the installed chinesecalendar's end, not today."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from center.alert_calendars import RECHECK_US as CALENDAR_RECHECK_US
from center.alert_loop import AlertLoop
from center.alerts import model
from center.tables import calendar, workflow
from tests.integration.cluster import add_group, add_rule, center_config, edit_rule, now_us
from tests.ops.chat_receivers import DINGTALK_SECRET, running_chat_server
from tests.ops.receivers import LOCAL_TARGETS, webhook_receiver
from tests.ops.test_alerts import SECRET, add_channel, notifications
from tests.ops.test_calendar_ending import END, at
from tests.ops.test_chat_alerts import text_of

pytestmark = pytest.mark.timeout(120)
S = 1_000_000
SKIP = "calendar:cn-workdays:skip"


async def _add(engine: AsyncEngine, table: Any, **values: Any) -> int:
    row = {"create_time": now_us(), "update_time": now_us()} | values
    async with engine.begin() as conn:
        return int((await conn.execute(insert(table).values(**row))).inserted_primary_key[0])  # type: ignore[index]


async def test_rules_and_workflows_on_an_ending_calendar_are_told_then_recover(
    engine: AsyncEngine, db_url: str
):
    gid = await add_group(engine)
    payroll = await add_rule(
        engine, [], gid=gid, name="payroll", rule="0 9 * * *", calendar="cn-workdays"
    )
    await add_rule(engine, [], gid=gid, name="plain", rule="0 9 * * *")  # no calendar
    await add_rule(  # paused: not told
        engine, [], gid=gid, name="paused", rule="0 9 * * *", calendar="cn-workdays", status=0
    )
    await _add(engine, calendar, gid=gid, name="ops-days", base="cn-workdays")
    close = await _add(
        engine,
        workflow,
        gid=gid,
        name="month-close",
        rule="0 18 * * *",
        timezone="Asia/Shanghai",
        calendar="ops-days",
        calendar_fallback="weekdays",
    )
    async with webhook_receiver() as hook, running_chat_server("dingtalk") as robot:
        events = model.CALENDAR_ENDING
        await add_channel(engine, gid, hook.url, events=events, language="en")
        await add_channel(
            engine,
            gid,
            robot.url(),
            kind="dingtalk",
            secret=DINGTALK_SECRET,
            events=events,
            language="zh-CN",
            name="robot",
        )
        loop = AlertLoop(engine, center_config(db_url, **LOCAL_TARGETS))
        assert await loop.evaluate(at(40)) == 0  # more than a month ahead: quiet
        t0 = at(20)  # the next hourly look: within 30 days
        assert t0 - at(40) >= CALENDAR_RECHECK_US
        assert await loop.evaluate(t0) == 4  # two calendars, two channels
        assert await loop.deliver_due(t0) == 4
        webhooks = {d.json["subject"]: d for d in [await hook.next(), await hook.next()]}
        chats = [text_of("dingtalk", await robot.next()) for _ in range(2)]
        assert await loop.evaluate(t0 + 5 * S) == 0  # still open: nothing new
        invoices = await add_rule(  # one more user, read alone between the hourly reads
            engine, [], gid=gid, name="invoices", rule="0 9 * * *", calendar="cn-workdays"
        )
        assert await loop.evaluate(t0 + 10 * S) == 0  # the same calendar's alert: not again
        await edit_rule(engine, payroll, status=0)  # paused: invoices still affected
        assert await loop.evaluate(t0 + 15 * S) == 0
        await edit_rule(engine, invoices, calendar="")  # the last one of the group: over
        assert await loop.evaluate(t0 + 20 * S) == 2
        assert await loop.deliver_due(t0 + 20 * S) == 2
        recovery = await hook.next()
        await robot.next()
        assert robot.refused.empty()
    rule = webhooks[SKIP]
    assert rule.signed_with(SECRET) and rule.headers["x-unitedcron-event"] == "calendar_ending"
    assert rule.json["summary"] == (
        f"calendar cn-workdays has no data after {END}: fires of 1 rules/workflows after that "
        f"do not run (calendar_fallback): payroll ({payroll})"
    )
    assert rule.json["calendar"] == {"name": "cn-workdays", "last": END, "fallback": "skip"}
    assert rule.json["users"] == [{"kind": "rule", "id": payroll, "name": "payroll"}]
    assert rule.json["total"] == 1
    flow = webhooks["calendar:ops-days:weekdays"].json
    assert flow["users"] == [{"kind": "workflow", "id": close, "name": "month-close"}]
    assert "run by the day of the week" in flow["summary"]
    said = "\n".join(chats)
    assert "[UnitedCron] 告警 · 日历数据即将用完" in said
    assert (
        f"日历 cn-workdays 在 {END} 之后没有数据：1 个规则/工作流此后的触发不运行"
        "（calendar_fallback）：payroll" in said
    )
    assert f"日历 ops-days 在 {END} 之后没有数据" in said and "按星期几运行" in said
    assert (recovery.json["state"], recovery.json["subject"]) == ("recovery", SKIP)
    assert [n["status"] for n in await notifications(engine)] == ["sent"] * 6
