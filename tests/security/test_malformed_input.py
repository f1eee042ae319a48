"""Inputs that made the admin answer 500: each is now refused with a 4xx naming the problem."""

from __future__ import annotations

import json

import httpx
from fastapi import FastAPI

from tests.admin.seed import World
from tests.security.helpers import changed_tables, csrf_of, session_client, snapshot

HUGE = "9" * 25  # beyond a signed 64-bit integer: SQLite's driver raised OverflowError
SURROGATE = "\ud800"  # valid in JSON as an escape, not valid Unicode


async def test_numbers_beyond_64_bits(app: FastAPI, api: httpx.AsyncClient, world: World):
    """Ids, filters and fields beyond 64 bits: 404 for an id, 422 for a field, never a 500."""
    root, ids = world.auth("root"), world.ids
    calls = [
        ("GET", f"/api/v1/rules/{HUGE}", None, 404),
        ("POST", f"/api/v1/agents/{HUGE}/approve", {"gid": world.alpha}, 404),
        ("GET", f"/api/v1/rules?gid={HUGE}", None, 422),
        ("GET", f"/api/v1/runs?since_us={HUGE}", None, 422),
        ("GET", f"/api/v1/runs/{ids['run_a']}/output?offset={HUGE}", None, 422),
        ("PATCH", f"/api/v1/rules/{ids['rule_a']}", {"depends_on": int(HUGE)}, 422),
        (
            "POST",
            "/api/v1/grants",
            {"user_id": int(HUGE), "gid": world.alpha, "role": "admin"},
            422,
        ),
    ]
    for method, url, body, status in calls:
        answer = await api.request(method, url, json=body, headers=root)
        assert answer.status_code == status, f"{method} {url}: {answer.text[:200]}"
    client = await session_client(app, world.user_ids["root"])
    token = await csrf_of(client)
    pages = [
        (f"/rules/{HUGE}", 404),
        (f"/rules?gid={HUGE}", 200),
        (f"/runs?before_id={HUGE}&rule={HUGE}", 200),
        (f"/audit?before_id={HUGE}", 200),
        (f"/agents?gid={HUGE}", 200),
    ]
    for url, status in pages:
        assert (await client.get(url)).status_code == status, url
    forms = [
        (f"/users/{world.user_ids['viewer']}/grants", {"gid": HUGE, "role": "admin"}, 422),
        ("/alerts", {"gid": HUGE, "name": "x", "kind": "webhook", "target": "https://e.x/"}, 422),
    ]
    for url, form, status in forms:
        assert (await client.post(url, data=form | {"csrf": token})).status_code == status, url
    await client.aclose()


async def test_lone_surrogates_in_json(app: FastAPI, api: httpx.AsyncClient, world: World):
    """A lone surrogate in any JSON text (API bodies, and the env and labels fields of the
    forms) is refused with 422 naming the field; nothing is stored; the lists still render."""
    admin = world.auth("admin")
    client = await session_client(app, world.user_ids["admin"])
    before = await snapshot(app.state.engine)
    calls = [
        ("POST", "/api/v1/groups", {"name": f"x{SURROGATE}"}, world.auth("root"), "name"),
        (
            "PATCH",
            f"/api/v1/groups/{world.alpha}",
            {"description": SURROGATE},
            admin,
            "description",
        ),
        ("PATCH", f"/api/v1/rules/{world.ids['rule_a']}", {"env": {"A": SURROGATE}}, admin, "env"),
        ("PATCH", f"/api/v1/rules/{world.ids['rule_a']}", {"name": SURROGATE}, admin, "name"),
        (
            "PATCH",
            f"/api/v1/agents/{world.ids['agent_a']}",
            {"labels": {SURROGATE: "x"}},
            admin,
            "labels",
        ),
        (
            "POST",
            "/api/v1/auth/token",
            {"username": SURROGATE, "password": "x" * 8},
            {},
            "username",
        ),
    ]
    for method, url, body, headers, field in calls:
        # json.dumps writes the \ud800 escape, as any JSON client may (httpx's json= cannot).
        content, json_type = json.dumps(body), {"content-type": "application/json"}
        answer = await api.request(method, url, content=content, headers=headers | json_type)
        assert answer.status_code == 422, f"{method} {url}: {answer.text[:200]}"
        assert answer.json()["error"]["field"] == field
    token = await csrf_of(client)
    escaped = '{"A": "\\ud800"}'  # what a user types in the form's JSON field
    env_form = {"gid": str(world.alpha), "name": "x", "rule": "@hourly", "execute": "/bin/true"}
    answers = [
        await client.post("/rules/new", data=env_form | {"env": escaped, "csrf": token}),
        await client.post(
            f"/agents/{world.ids['agent_a']}", data={"labels": escaped, "csrf": token}
        ),
    ]
    assert [a.status_code for a in answers] == [422, 422]
    assert (await client.get("/agents")).status_code == 200
    await client.aclose()
    assert (await api.get("/api/v1/agents", headers=admin)).status_code == 200
    assert changed_tables(before, await snapshot(app.state.engine)) == []


async def test_time_zones_that_are_folders_or_too_long(
    app: FastAPI, api: httpx.AsyncClient, world: World
):
    """'Europe' (a folder of the zone database) and a 300-character zone are unknown zones
    (422 naming timezone), in the preview of the API and the pages and in a new rule."""
    rule = {"gid": world.alpha, "name": "x", "rule": "@hourly", "execute": "/bin/true"}
    client = await session_client(app, world.user_ids["admin"])
    for zone in ("Europe", "America", "x" * 300):
        preview = {"rule": "* * * * *", "timezone": zone}
        answers = [
            await api.get("/api/v1/rules/preview", params=preview, headers=world.auth("admin")),
            await client.get("/rules/preview", params=preview),
            await api.post(
                "/api/v1/rules", json=rule | {"timezone": zone[:64]}, headers=world.auth("admin")
            ),
        ]
        for answer in answers:
            assert answer.status_code == 422, f"{zone[:20]}: {answer.text[:200]}"
            assert answer.json()["error"]["field"] == "timezone"
    await client.aclose()
