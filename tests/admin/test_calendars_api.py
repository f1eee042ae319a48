"""Calendars and spread over the admin: the real-times preview, group calendars (API and
pages, audited, refused while in use), rules with calendar and jitter_s."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import select

from center.tables import audit_log, crontab
from tests.admin.seed import World
from tests.admin.test_pages import _csrf, _session_client

PREVIEW = "/api/v1/rules/preview"


async def _preview(api: httpx.AsyncClient, world: World, **params: Any) -> httpx.Response:
    return await api.get(PREVIEW, params=params, headers=world.auth("viewer"))


async def test_preview_of_cn_workdays_lists_the_official_working_days(
    api: httpx.AsyncClient, world: World
):
    """Done when: `0 9 * * *` Asia/Shanghai cn-workdays from 2026-09-28: no weekend, nothing
    in 2026-10-01..07, Saturday 2026-10-10 (a make-up working day) in; and the warning."""
    answer = await _preview(
        api,
        world,
        rule="0 9 * * *",
        timezone="Asia/Shanghai",
        calendar="cn-workdays",
        calendar_mode="only",
        **{"from": "2026-09-28T00:00"},
        count=12,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    days = [f[:10] for f in body["fires"]]
    assert days[:7] == [
        "2026-09-28",
        "2026-09-29",
        "2026-09-30",
        "2026-10-08",
        "2026-10-09",
        "2026-10-10",
        "2026-10-12",
    ]
    assert all(f.endswith("09:00:00 CST (+0800)") for f in body["fires"])
    assert len(body["fires_us"]) == 12
    assert "cn-workdays has no data after 2026-12-31" in body["warning"]


async def test_preview_shows_h_and_jitter_of_the_rule(api: httpx.AsyncClient, world: World):
    """With the rule id, H and jitter give that rule's real times (milliseconds shown)."""
    start = {"from": "2026-01-01T00:00:00+00:00"}
    one = await _preview(api, world, rule="H H * * *", id=world.ids["rule_a"], count=2, **start)
    again = await _preview(api, world, rule="H H * * *", id=world.ids["rule_a"], count=2, **start)
    assert one.status_code == 200 and one.json() == again.json()
    jittered = await _preview(
        api, world, rule="0 * * * *", jitter_s=600, id=world.ids["rule_a"], count=5, **start
    )
    fires = jittered.json()["fires"]
    assert all(re.match(r"2026-01-01 \d\d:[0-9]{2}:\d\d(\.\d{3})? UTC", f) for f in fires)
    assert any("." in f for f in fires) and jittered.json()["warning"] == ""


async def test_preview_names_the_bad_field(api: httpx.AsyncClient, world: World):
    for params, field in [
        ({"rule": "0 9 * * *", "calendar": "nope"}, "calendar"),
        (
            {"rule": "0 9 * * *", "calendar": "weekdays", "calendar_mode": "sometimes"},
            "calendar_mode",
        ),
        ({"rule": "0 9 * * *", "calendar_fallback": "guess"}, "calendar_fallback"),
        ({"rule": "*/10 * * * * *", "jitter_s": 30}, "jitter_s"),
        ({"rule": "0 9 * * *", "from": "yesterday"}, "from"),
        ({"rule": "0 9 * * *", "count": 0}, "count"),
        ({"rule": "H(9-1) * * * *"}, "rule"),
    ]:
        answer = await _preview(api, world, **params)
        assert answer.status_code == 422, (params, answer.text)
        assert answer.json()["error"]["field"] == field, (params, answer.text)


async def test_group_calendars_crud_audited_and_refused_while_used(
    api: httpx.AsyncClient, world: World, app
):
    """A group admin creates, edits and deletes a calendar (each audited); a rule using it
    keeps it from deletion; the preview finds it by the rule's group; others cannot see it."""
    admin = world.auth("admin")
    body = {
        "gid": world.alpha,
        "name": "freeze",
        "base": "cn-workdays",
        "include": "2026-10-10",
        "exclude": "2026-09-29..2026-09-30",
    }
    created = await api.post("/api/v1/calendars", json=body, headers=admin)
    assert created.status_code == 201, created.text
    cal_id = created.json()["id"]
    dup = await api.post("/api/v1/calendars", json=body, headers=admin)
    assert dup.status_code == 409
    bad = await api.post(
        "/api/v1/calendars", json=body | {"name": "x", "include": "2026-02-30"}, headers=admin
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "include"
    denied = await api.post(
        "/api/v1/calendars", json=body | {"name": "y"}, headers=world.auth("operator")
    )
    assert denied.status_code == 403
    hidden = await api.get(f"/api/v1/calendars/{cal_id}", headers=world.auth("beta_admin"))
    assert hidden.status_code == 404

    preview = await _preview(
        api,
        world,
        rule="0 9 * * *",
        timezone="Asia/Shanghai",
        calendar="freeze",
        gid=world.alpha,
        count=3,
        **{"from": "2026-09-28T00:00"},
    )
    assert [f[:10] for f in preview.json()["fires"]] == ["2026-09-28", "2026-10-08", "2026-10-09"]

    rule = await api.patch(
        f"/api/v1/rules/{world.ids['rule_a']}",
        json={"calendar": "freeze", "calendar_mode": "except", "jitter_s": 3},
        headers=admin,
    )
    assert rule.status_code == 200, rule.text
    assert rule.json()["calendar"] == "freeze" and rule.json()["jitter_s"] == 3
    in_use = await api.delete(f"/api/v1/calendars/{cal_id}", headers=admin)
    assert in_use.status_code == 409 and "rule" in in_use.json()["error"]["reason"]
    renamed = await api.patch(f"/api/v1/calendars/{cal_id}", json={"name": "other"}, headers=admin)
    assert renamed.status_code == 409
    edited = await api.patch(f"/api/v1/calendars/{cal_id}", json={"include": ""}, headers=admin)
    assert edited.status_code == 200 and edited.json()["include"] == ""
    await api.patch(f"/api/v1/rules/{world.ids['rule_a']}", json={"calendar": ""}, headers=admin)
    assert (await api.delete(f"/api/v1/calendars/{cal_id}", headers=admin)).status_code == 204
    async with app.state.engine.connect() as conn:
        actions = (
            (
                await conn.execute(
                    select(audit_log.c.action).where(audit_log.c.object_type == "calendar")
                )
            )
            .scalars()
            .all()
        )
    done = [a for a in actions if a.startswith("calendar.")]
    assert done == ["calendar.create", "calendar.update", "calendar.delete"]
    assert "permission.refused" in actions  # the operator's attempt


async def test_rule_fields_checked_and_warning_shown(api: httpx.AsyncClient, world: World, app):
    """A rule with an unknown calendar or too long a jitter is refused naming the field; one
    with cn-workdays is stored and shows the data warning in the API."""
    admin = world.auth("admin")
    rule_id = world.ids["rule_a"]
    for changes, field in [
        ({"calendar": "nope"}, "calendar"),
        ({"calendar": "weekdays", "calendar_mode": "never"}, "calendar_mode"),
        ({"rule": "*/5 * * * * *", "jitter_s": 6}, "jitter_s"),
    ]:
        answer = await api.patch(f"/api/v1/rules/{rule_id}", json=changes, headers=admin)
        assert answer.status_code == 422 and answer.json()["error"]["field"] == field, answer.text
    good = {
        "rule": "H 9 * * 1-5",
        "timezone": "Asia/Shanghai",
        "calendar": "cn-workdays",
        "calendar_fallback": "weekdays",
    }
    assert (
        await api.patch(f"/api/v1/rules/{rule_id}", json=good, headers=admin)
    ).status_code == 200
    got = (await api.get(f"/api/v1/rules/{rule_id}", headers=world.auth("viewer"))).json()
    assert got["calendar_fallback"] == "weekdays"
    assert (
        got["warning"].startswith("cn-workdays has no data after 2026-12-31")
        or got["warning"] == ""
    )
    async with app.state.engine.connect() as conn:
        stored = (
            await conn.execute(select(crontab.c.calendar).where(crontab.c.id == rule_id))
        ).scalar()
    assert stored == "cn-workdays"


async def test_calendar_pages_and_the_rule_form_preview(app, world: World):
    """Pages: a group admin creates a calendar from the group's calendars page; the rule
    form's preview answers the real times with the warning."""
    client = await _session_client(app, world, "admin")
    csrf = await _csrf(client, f"/groups/{world.alpha}/calendars")
    form = {
        "csrf": csrf,
        "name": "maint",
        "description": "",
        "base": "",
        "include": "2026-10-01",
        "exclude": "",
    }
    created = await client.post(f"/groups/{world.alpha}/calendars", data=form)
    assert created.status_code == 303, created.text
    page = await client.get(created.headers["location"])
    assert "maint" in page.text and "2026-10-01" in page.text
    bad = await client.post(f"/groups/{world.alpha}/calendars", data=form | {"name": "weekdays"})
    assert bad.status_code == 422 and "built-in" in bad.text
    listing = await client.get(f"/groups/{world.alpha}/calendars")
    assert 'href="/calendars/' in listing.text
    preview = await client.get(
        "/rules/preview",
        params={
            "rule": "0 9 * * *",
            "timezone": "Asia/Shanghai",
            "calendar": "cn-workdays",
            "gid": str(world.alpha),
        },
    )
    assert preview.status_code == 200 and preview.json()["fires"]
    form_page = await client.get("/rules/new")
    assert 'id="f-calendar"' in form_page.text and 'id="f-jitter_s"' in form_page.text
    await client.aclose()
