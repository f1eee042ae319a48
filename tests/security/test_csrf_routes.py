"""CSRF on every form: each POST route of the pages (found from the router) refuses a forgery."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from admin import pages
from admin.pages._common import checked_form
from tests.admin.seed import PASSWORD, World
from tests.security.helpers import (
    changed_tables,
    csrf_of,
    depends_on,
    flow_ids,
    leaf_routes,
    session_client,
    snapshot,
)

POST_ROUTES = [r for r in leaf_routes(pages.router) if "POST" in r.methods]
RULE_FORM = {
    "gid": "{alpha}",
    "name": "forged",
    "rule": "* * * * *",
    "execute": "/usr/bin/id",
    "run_user": "root",
    "status": "1",
    "agents": "{agent_a}",
}
WORKFLOW_FORM = {"gid": "{alpha}", "name": "forged", "nodes": "{rule_a}", "status": "1"}
# What each form would change if a forged post got through: valid values, so that only the
# CSRF check stands in the way. Routes not listed post an empty form (a button).
FORMS: dict[str, dict[str, str]] = {
    "/account/password": {
        "current_password": PASSWORD,
        "new_password": "forged password",
        "new_password2": "forged password",
    },
    "/account/tokens": {"name": "forged"},
    "/groups": {"name": "forged"},
    "/groups/{gid}": {"name": "forged", "description": "forged"},
    "/groups/{gid}/grants": {"username": "nobody", "role": "admin"},
    "/agents/{aid}/approve": {"gid": "{alpha}"},
    "/agents/{aid}/status": {"status": "0"},
    "/agents/{aid}": {"labels": '{{"forged": "1"}}', "gid": "{beta}"},
    "/rules/new": RULE_FORM,
    "/rules/{task_id}/edit": RULE_FORM,
    "/rules/{task_id}/status": {"status": "0"},
    "/users": {"name": "mallory", "password": "forged password", "superadmin": "1"},
    "/users/{user_id}": {"superadmin": "1", "status": "1", "password": "forged password"},
    "/users/{user_id}/grants": {"gid": "{alpha}", "role": "admin"},
    "/alerts": {
        "gid": "{alpha}",
        "name": "forged",
        "kind": "webhook",
        "target": "https://evil.example/",
        "events": "run_failed",
        "throttle_s": "0",
        "grace_s": "60",
        "status": "1",
    },
    "/alerts/{cid}": {"name": "forged", "kind": "webhook", "target": "https://evil.example/"},
    "/groups/{gid}/calendars": {"name": "forged", "include": "2026-01-01"},
    "/calendars/{calendar_id}": {"name": "forged", "include": "2026-01-01"},
    "/workflows/new": WORKFLOW_FORM,
    "/workflows/{workflow_id}/edit": WORKFLOW_FORM,
    "/workflows/{workflow_id}/status": {"status": "0"},
}
# Which object each path parameter names; the approve form needs the pending agent.
PATH_OBJECTS = {
    "calendar_id": "calendar_a",
    "key_id": "key_a",
    "aid": "agent_a",
    "task_id": "rule_a",
    "run_id": "run_a",
    "gid": "alpha",
    "user_id": "nobody",
    "grant_id": "grant_a",
    "cid": "channel_a",
    "token_id": "token_root",
    "workflow_id": "workflow_a",
    "flow_runid": "flow_a",
}


def _ids(w: World) -> dict[str, Any]:
    return {
        "alpha": w.alpha,
        "beta": w.beta,
        "nobody": w.user_ids["nobody"],
        **w.ids,
        **flow_ids(w),
    }


# The TOTP steps of a login: a full session is sent back to /login there, nothing changes.
LOGIN_STEPS = ("/login/enrol", "/login/totp")


def _url(route: APIRoute, ids: dict[str, Any]) -> str:
    objects = dict(PATH_OBJECTS)
    if route.path.endswith("/approve"):
        objects["aid"] = "pending"
    names = {p.name for p in route.dependant.path_params}
    unknown = names - set(objects)
    assert not unknown, f"{route.path}: add {unknown} to PATH_OBJECTS"
    return route.path.format(**{n: ids[objects[n]] for n in names})


def _form(route: APIRoute, ids: dict[str, Any]) -> dict[str, str]:
    return {k: v.format(**ids) for k, v in FORMS.get(route.path, {}).items()}


def test_the_router_has_the_forms_and_each_checks_the_token():
    """Every POST route but the login forms depends on the session's CSRF check; the TOTP
    steps of a login check their staged session's token themselves (tests/admin/sso)."""
    paths = {r.path for r in POST_ROUTES}
    assert len(paths) >= 25 and {"/rules/new", "/logout", "/users/{user_id}"} <= paths
    unchecked = [r.path for r in POST_ROUTES if not depends_on(r, checked_form)]
    assert sorted(unchecked) == ["/login", *LOGIN_STEPS]


async def _forgeries(
    client: httpx.AsyncClient, url: str, form: dict[str, str], other_token: str
) -> list[httpx.Response]:
    """The same post with no token, a wrong one, another session's, one in the query string,
    and one in a JSON body."""
    token = await csrf_of(client)
    return [
        await client.post(url, data=form),
        await client.post(url, data=form | {"csrf": "wrong"}),
        await client.post(url, data=form | {"csrf": other_token}),
        await client.post(url, params={"csrf": token}, data=form),
        await client.post(url, json=form | {"csrf": token}),
    ]


async def _attack(
    app: FastAPI, client: httpx.AsyncClient, other_token: str, route: APIRoute, ids: dict[str, Any]
) -> list[str]:
    """Forge one route's post; the problems found (none when every forgery is refused)."""
    before = await snapshot(app.state.engine)
    answers = await _forgeries(client, _url(route, ids), _form(route, ids), other_token)
    problems = [f"{a.status_code} {a.text[:80]!r}" for a in answers if a.status_code != 403]
    problems += [f"no CSRF reason: {a.text[:80]!r}" for a in answers if "CSRF" not in a.text]
    changed = changed_tables(before, await snapshot(app.state.engine))
    problems += [f"changed {changed}"] if changed else []
    if (await client.get("/")).status_code != 200:
        problems.append("the forgery ended the session")
    return [f"{route.path}: {p}" for p in problems]


async def test_forged_posts_are_refused(app: FastAPI, world: World):
    """A superadmin's browser posting a forged form, on every route, gets 403; nothing changes."""
    client = await session_client(app, world.user_ids["root"])
    other = await session_client(app, world.user_ids["viewer"])
    other_token = await csrf_of(other)
    problems = []
    try:
        for route in POST_ROUTES:
            if route.path not in ("/login", *LOGIN_STEPS):
                problems += await _attack(app, client, other_token, route, _ids(world))
    finally:
        await client.aclose()
        await other.aclose()
    assert not problems, "\n".join(problems)


async def test_forged_login_starts_no_session(app: FastAPI, world: World):
    """Login CSRF: without the login form's own cookie and field matching, no session starts."""
    form = {"username": "root", "password": PASSWORD}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://admin.test"
    ) as client:
        answers = [await client.post("/login", data=form | {"login_csrf": "attacker-chosen"})]
        await client.get("/login")
        answers.append(await client.post("/login", data=form))
        answers.append(await client.post("/login", data=form | {"login_csrf": "wrong"}))
        assert [a.status_code for a in answers] == [422, 422, 422]
        assert "uc_session" not in client.cookies
    before = await snapshot(app.state.engine)
    assert before["admin_session"] == []
