"""IDOR: every route with an id in its path, given another group's object, answers 403 or 404."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from admin import api, pages
from admin.app import API_PREFIX
from tests.admin.seed import World
from tests.security.helpers import (
    changed_tables,
    csrf_of,
    flow_ids,
    leaf_routes,
    session_client,
    snapshot,
)

# The attacker has a role in group alpha only; every object below is beta's.
BETA_OBJECTS = {
    "calendar_id": "calendar_b",
    "key_id": "key_b",
    "aid": "agent_b",
    "task_id": "rule_b",
    "run_id": "run_b",
    "gid": "beta",
    "grant_id": "grant_b",
    "cid": "channel_b",
    "channel_id": "channel_b",
    "command_id": "command_b",
    "token_id": "token_b",
    "user_id": "beta_admin",
    "workflow_id": "workflow_b",
    "flow_runid": "flow_b",
    "number": "version_b",
}
# Bodies that would change the object if the permission check let them through.
API_BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/groups/{gid}"): {"name": "pwned", "description": "pwned"},
    ("PATCH", "/agents/{aid}"): {"status": 0, "labels": {"pwned": "1"}},
    ("POST", "/agents/{aid}/approve"): {"gid": "{alpha}"},
    ("POST", "/agents/{aid}/drain"): {"confirm": True},
    ("PATCH", "/rules/{task_id}"): {"status": 0},
    ("POST", "/rules/{task_id}/rollback"): {"version": 1},
    ("PATCH", "/users/{user_id}"): {"superadmin": True},
    ("PATCH", "/alert-channels/{channel_id}"): {"name": "pwned"},
    ("PATCH", "/calendars/{calendar_id}"): {"include": "2026-01-01"},
    ("PATCH", "/groups/{gid}/keys/{key_id}"): {"limit": 99},
    ("POST", "/groups/{gid}/keys"): {"key": "pwned", "limit": 1},
    ("PATCH", "/workflows/{workflow_id}"): {"status": 0},
    ("PUT", "/workflows/{workflow_id}"): {"gid": "{alpha}", "name": "pwned", "nodes": []},
}
PAGE_FORMS: dict[str, dict[str, str]] = {
    "/groups/{gid}": {"name": "pwned", "description": "pwned"},
    "/groups/{gid}/grants": {"username": "{attacker}", "role": "admin"},
    "/agents/{aid}": {"labels": '{{"pwned": "1"}}', "gid": "{alpha}"},
    "/agents/{aid}/approve": {"gid": "{alpha}"},
    "/agents/{aid}/status": {"status": "0"},
    "/rules/{task_id}/status": {"status": "0"},
    "/rules/{task_id}/rollback": {"version": "1"},
    "/rules/{task_id}/edit": {"gid": "{alpha}", "name": "pwned", "rule": "@hourly"},
    "/users/{user_id}": {"superadmin": "1", "status": "1"},
    "/users/{user_id}/grants": {"gid": "{beta}", "role": "admin"},
    "/alerts/{cid}": {"name": "pwned", "kind": "webhook", "target": "https://evil.example/"},
    "/calendars/{calendar_id}": {"name": "pwned", "include": "2026-01-01"},
    "/groups/{gid}/calendars": {"name": "pwned", "include": "2026-01-01"},
    "/groups/{gid}/keys": {"key": "pwned", "limit": "1"},
    "/groups/{gid}/keys/{key_id}": {"limit": "99"},
    "/workflows/{workflow_id}/edit": {"gid": "{alpha}", "name": "pwned", "nodes": "{rule_a}"},
    "/workflows/{workflow_id}/status": {"status": "0"},
}


def _ids(w: World, attacker: str) -> dict[str, Any]:
    return {
        "alpha": w.alpha,
        "beta": w.beta,
        "beta_admin": w.user_ids["beta_admin"],
        "attacker": attacker,
        **w.ids,
        **flow_ids(w),
    }


def _id_routes(router: Any) -> list[tuple[str, APIRoute]]:
    return [
        (method, r)
        for r in leaf_routes(router)
        if r.dependant.path_params
        for method in sorted(r.methods - {"HEAD"})
    ]


def _url(route: APIRoute, ids: dict[str, Any]) -> str:
    names = {p.name for p in route.dependant.path_params}
    assert names <= set(BETA_OBJECTS), f"{route.path}: add {names} to BETA_OBJECTS"
    return route.path.format(**{n: ids[BETA_OBJECTS[n]] for n in names})


def _filled(value: Any, ids: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _filled(v, ids) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    return value


def _allowed(
    attacker: str, method: str, route: APIRoute, answer: httpx.Response, beta: int
) -> bool:
    """Group admins may read every user (to grant roles): documented, and the user's roles in
    other groups stay hidden. Anything else of another group is 403 or 404."""
    if answer.status_code in (403, 404):
        return True
    reads_user = method == "GET" and route.path.endswith("/users/{user_id}")
    if not (attacker == "admin" and reads_user and answer.status_code == 200):
        return False
    if answer.headers["content-type"].startswith("application/json"):
        return all(g["gid"] != beta for g in answer.json()["grants"])
    return f'href="/groups/{beta}"' not in answer.text


async def _api_attacks(
    client: httpx.AsyncClient, w: World, attacker: str, ids: dict[str, Any]
) -> list[str]:
    problems = []
    for method, route in _id_routes(api.router):
        body = _filled(API_BODIES.get((method, route.path)), ids)
        kwargs = {"json": body} if method in ("POST", "PATCH", "PUT") else {}
        url = API_PREFIX + _url(route, ids)
        answer = await client.request(method, url, headers=w.auth(attacker), **kwargs)
        if not _allowed(attacker, method, route, answer, ids["beta"]):
            problems.append(f"{method} {url}: {answer.status_code} {answer.text[:100]}")
    return problems


async def _page_attacks(
    client: httpx.AsyncClient, token: str, attacker: str, ids: dict[str, Any]
) -> list[str]:
    problems = []
    for method, route in _id_routes(pages.router):
        url = _url(route, ids)
        if method == "POST":
            form = {k: v.format(**ids) for k, v in PAGE_FORMS.get(route.path, {}).items()}
            answer = await client.post(url, data=form | {"csrf": token})
        else:
            answer = await client.get(url)
        if not _allowed(attacker, method, route, answer, ids["beta"]):
            problems.append(f"{method} {url}: {answer.status_code} {answer.text[:100]}")
    return problems


@pytest.mark.parametrize("attacker", ["operator", "admin"])
async def test_objects_of_another_group_by_id(
    app: FastAPI, api: httpx.AsyncClient, world: World, attacker: str
):
    """An operator or an admin of alpha, on every id route of the API and the pages, with beta's
    objects: 403 or 404 each time, and no row of any table changes."""
    ids = _ids(world, attacker)
    client = await session_client(app, world.user_ids[attacker])
    before = await snapshot(app.state.engine)
    try:
        problems = await _api_attacks(api, world, attacker, ids)
        problems += await _page_attacks(client, await csrf_of(client), attacker, ids)
    finally:
        await client.aclose()
    assert not problems, "\n".join(problems)
    assert changed_tables(before, await snapshot(app.state.engine)) == []


# An own object pointed at another group's: move it there, target its agent, depend on its
# rule, grant oneself a role there, approve a pending agent into it, create things in it.
REFERENCES: list[tuple[str, str, Any]] = [
    ("PATCH", "/rules/{rule_a}", {"gid": "{beta}"}),
    ("PATCH", "/rules/{rule_a}", {"agents": ["{agent_b}"]}),
    ("PATCH", "/rules/{rule_a}", {"depends_on": "{rule_b}"}),
    ("POST", "/rules", {"gid": "{beta}", "name": "x", "rule": "@hourly", "execute": "/bin/id"}),
    ("PATCH", "/agents/{agent_a}", {"gid": "{beta}"}),
    ("POST", "/agents/{pending}/approve", {"gid": "{beta}"}),
    ("POST", "/grants", {"username": "admin", "gid": "{beta}", "role": "admin"}),
    ("POST", "/alert-channels", {"gid": "{beta}", "name": "x", "target": "https://e.example/"}),
]
# Lists filtered by another group's ids: nothing of it comes back.
FILTERS = [
    "/rules?gid={beta}",
    "/agents?gid={beta}",
    "/runs?rule={rule_b}",
    "/runs?agent={agent_b}",
    "/grants?gid={beta}",
    "/alert-channels?gid={beta}",
    "/audit?object_type=rule&object_id={rule_b}",
]


async def test_references_to_another_group_in_bodies_and_filters(
    app: FastAPI, api: httpx.AsyncClient, world: World
):
    """An admin of alpha cannot reach beta through a body or a filter: refused, or empty."""
    ids = _ids(world, "admin")
    before = await snapshot(app.state.engine)
    problems = []
    for method, path, body in REFERENCES:
        url = API_PREFIX + path.format(**ids)
        answer = await api.request(
            method, url, json=_filled(body, ids), headers=world.auth("admin")
        )
        if answer.status_code not in (403, 404, 422):
            problems.append(f"{method} {url} {body}: {answer.status_code} {answer.text[:100]}")
    for path in FILTERS:
        answer = await api.get(API_PREFIX + path.format(**ids), headers=world.auth("admin"))
        if answer.status_code != 200 or answer.json() != []:
            problems.append(f"GET {path}: {answer.status_code} {answer.text[:100]}")
    assert not problems, "\n".join(problems)
    assert changed_tables(before, await snapshot(app.state.engine)) == []
