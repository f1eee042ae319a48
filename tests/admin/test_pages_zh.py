"""The rules and runs pages in the reader's language and time zone (zh-CN, a zone of their own)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy import update

from admin.chart import runs_chart
from admin.timeline import TimelineRun, layout
from center.tables import admin_user
from i18n.catalogs import catalog
from i18n.languages import Language
from tests.admin.seed import World, add_run
from tests.admin.test_pages import _session_client

ZH = catalog(Language.ZH_CN).gettext
H1_RE = re.compile(r"<h1>(.*?)</h1>", re.DOTALL)


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1_000_000)


async def test_a_rule_page_in_chinese(app: FastAPI, world: World):
    """Accept-Language zh-CN: the rule page's headings are Chinese, its data stays as it is."""
    async with await _session_client(
        app, world, "viewer", **{"Accept-Language": "zh-CN,zh;q=0.9"}
    ) as c:
        page = await c.get(f"/rules/{world.ids['rule_a']}")
        listing = await c.get("/rules")
    assert page.status_code == 200, page.text
    for heading in ("定义", "统计", "最近运行", "发送给中心的命令"):
        assert f"<h2>{heading}</h2>" in page.text
    assert "<h2>Definition</h2>" not in page.text and "Recent runs" not in page.text
    assert 'id="rule-name">alpha job</span>' in page.text  # a name is data
    assert "计划时间 (UTC)" in page.text  # the runs table names the reader's zone
    assert H1_RE.search(listing.text).group(1).startswith("规则")  # type: ignore[union-attr]
    assert ">筛选</button>" in listing.text and ">Filter<" not in listing.text


async def test_runs_filter_reads_times_in_the_readers_zone(app: FastAPI, world: World):
    """A user in Asia/Shanghai types wall-clock times of Shanghai: 10:00–12:00 there is
    02:00–04:00 UTC, which holds a run of 03:00 UTC and not one of 11:00 UTC."""
    engine = app.state.engine
    async with engine.begin() as conn:
        await conn.execute(
            update(admin_user)
            .where(admin_user.c.id == world.user_ids["viewer"])
            .values(timezone="Asia/Shanghai")
        )
    rule, agent = world.ids["rule_a"], world.ids["agent_a"]
    inside = await add_run(engine, rule, agent, status="success", sched_us=_us("2026-01-01T03:00"))
    outside = await add_run(engine, rule, agent, status="success", sched_us=_us("2026-01-01T11:00"))
    async with await _session_client(app, world, "viewer") as c:
        page = await c.get("/runs?since=2026-01-01T10:00&until=2026-01-01T12:00")
    assert page.status_code == 200, page.text
    assert f'href="/runs/{inside}"' in page.text and f'href="/runs/{outside}"' not in page.text
    assert "From (Asia/Shanghai)" in page.text and "scheduled (Asia/Shanghai)" in page.text
    assert "2026-01-01 11:00:00" in page.text  # the run's time, on Shanghai's clock


def test_charts_draw_in_the_readers_words_and_zone():
    """The pure layouts take the reader's gettext and zone; without them, English and UTC."""
    hour = _us("2026-01-01T00:00") // 3_600_000_000
    chart = runs_chart({(hour, "failed"): 2}, hour, ZH, "Asia/Kolkata")
    assert chart.segments[0].label == "2026-01-01 05:30: 2 失败"
    assert runs_chart({(hour, "failed"): 2}, hour).segments[0].label == "2026-01-01 00:00: 2 failed"
    start = _us("2026-01-01T00:00")
    run = TimelineRun(7, 1, "host-a", "running", start, start, 0, "backup")
    drawn = layout(
        [run], start, start + 3_600_000_000, start + 60_000_000, words=ZH, timezone="Asia/Shanghai"
    )
    assert drawn.bars[0].tooltip == "#7 backup: 运行中, 08:00:00 → 现在"
    assert drawn.ticks[0][1] == "08:00"
