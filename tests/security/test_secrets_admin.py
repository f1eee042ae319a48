"""Every page a superadmin sees and every GET of the API: no secret of any kind in them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select, update

from admin import api, pages
from admin.app import API_PREFIX, create_app
from center.tables import admin_session, admin_user, api_token, task_process
from tests.admin.conftest import admin_config
from tests.admin.seed import World
from tests.integration.cluster import SECRET
from tests.security.helpers import build_attack_world, flow_ids, leaf_routes, session_client
from tests.security.test_secrets import leaks

# The objects every id route is shown with: alpha's, which the superadmin and the viewer see.
OBJECTS = {
    "calendar_id": "calendar_a",
    "key_id": "key_a",
    "aid": "agent_a",
    "task_id": "rule_a",
    "run_id": "run_a",
    "gid": "alpha",
    "grant_id": "grant_a",
    "cid": "channel_a",
    "channel_id": "channel_a",
    "command_id": "command_a",
    "token_id": "token_root",
    "user_id": "viewer",
    "workflow_id": "workflow_a",
    "flow_runid": "flow_a",
    "number": "version_a",
}


# The login form, and steps of a login that only redirect a full session (or an admin without
# OIDC) back: no page of theirs is shown to a logged-in user.
NOT_PAGES = ("/login", "/login/totp", "/login/enrol", "/auth/oidc/start", "/auth/oidc/callback")


def _urls(router: Any, ids: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for route in leaf_routes(router):
        if "GET" not in route.methods or route.path in NOT_PAGES:
            continue
        names = [p.name for p in route.dependant.path_params]
        query = "?rule=%40hourly" if route.path.endswith("/preview") else ""
        query = "?from=1&to=1" if route.path.endswith("/diff") else query
        out.append(prefix + route.path.format(**{n: ids[OBJECTS[n]] for n in names}) + query)
    return out


async def _stored_secrets(app: FastAPI) -> list[str]:
    """What the tables hold that must never be shown: password and token hashes, session
    id hashes and CSRF tokens."""
    async with app.state.engine.connect() as conn:
        found = list((await conn.scalars(select(admin_user.c.password_hash))).all())
        found += (await conn.scalars(select(api_token.c.token_hash))).all()
        for row in (await conn.execute(select(admin_session))).mappings():
            found += [row["id_hash"]]
    return found


@pytest.fixture
async def app_with_secret(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The admin started where the cluster secret is in the environment (one EnvironmentFile
    for every process is a common setup)."""
    monkeypatch.setenv("UNITEDCRON_SECRET", SECRET)
    app = create_app(admin_config(db_url))
    yield app
    await app.state.engine.dispose()


async def _answers(app: FastAPI, w: World, user: str) -> dict[str, httpx.Response]:
    ids = {"alpha": w.alpha, "viewer": w.user_ids["viewer"], **w.ids, **flow_ids(w)}
    client = await session_client(app, w.user_ids[user])
    out = {}
    try:
        for url in _urls(pages.router, ids):
            out[url] = await client.get(url)
        for url in _urls(api.router, ids, API_PREFIX):
            out[url] = await client.get(url, headers=w.auth(user))
    finally:
        await client.aclose()
    return out


async def test_no_page_or_api_answer_shows_a_secret(app_with_secret: FastAPI):
    """As the superadmin: the cluster secret, password hashes, token hashes and session ids
    are nowhere; as a viewer, neither are the group's webhook signing secrets."""
    app = app_with_secret
    world = await build_attack_world(app.state.engine)
    async with app.state.engine.begin() as conn:  # a finished run: its stream ends at once
        await conn.execute(update(task_process).values(status="success"))
    answers = await _answers(app, world, "root")
    stored = await _stored_secrets(app)
    assert len(answers) >= 40 and all(a.status_code == 200 for a in answers.values()), [
        (u, a.status_code) for u, a in answers.items() if a.status_code != 200
    ]
    for url, answer in answers.items():
        assert leaks(answer.text, SECRET) == [], url
        assert "$argon2" not in answer.text, url
        assert not [s for s in stored if s in answer.text], url
    assert any("hook-secret-a" in a.text for a in answers.values())  # group admins see it
    for url, answer in (await _answers(app, world, "viewer")).items():
        assert "hook-secret-a" not in answer.text, url


def test_every_get_route_is_covered():
    """The lists above come from the routers: a new GET route is checked without a change."""
    routes = [r for r in leaf_routes(api.router) if isinstance(r, APIRoute)]
    assert len(_urls(api.router, dict.fromkeys(["alpha", "viewer", *OBJECTS.values()], 1))) == len(
        [r for r in routes if "GET" in r.methods]
    )
