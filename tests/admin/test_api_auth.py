"""API authentication: tokens, throttled failures, revocation, password changes, audit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from admin.app import create_app
from center.tables import api_token, audit_log
from tests.admin.conftest import BASE_URL, admin_config
from tests.admin.seed import PASSWORD, add_user, now_us


@pytest.fixture
async def strict_app(db_url: str) -> AsyncIterator[FastAPI]:
    """The app with tight throttling: 2 free failures per user, 4 per address, 1 s then 2 s."""
    app = create_app(
        admin_config(
            db_url,
            admin_login_free_failures=2,
            admin_login_addr_free_failures=4,
            admin_login_backoff_s=1.0,
            admin_login_backoff_max_s=60.0,
        )
    )
    await add_user(app.state.engine, "alice", roles={})
    await add_user(app.state.engine, "bob", roles={})
    try:
        yield app
    finally:
        async with asyncio.timeout(10):
            await app.state.engine.dispose()


def _client(app: FastAPI, address: str = "10.0.0.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 4000))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=10)


async def _login(client: httpx.AsyncClient, user: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/token", json={"username": user, "password": password})


async def test_token_for_a_password(strict_app: FastAPI):
    """The right password gives a token that works; the token is never stored or listed."""
    async with _client(strict_app) as client:
        answer = await _login(client, "Alice")  # names are case-insensitive
        assert answer.status_code == 201
        token = answer.json()["token"]
        h = {"Authorization": f"Bearer {token}"}
        me = await client.get("/api/v1/me", headers=h)
        assert me.json()["name"] == "alice" and "password_hash" not in me.json()
        listed = (await client.get("/api/v1/auth/tokens", headers=h)).json()
        assert [t["prefix"] for t in listed if t["name"] == ""] == [token[:12]]
        assert all("token_hash" not in t and "token" not in t for t in listed)
    async with strict_app.state.engine.connect() as conn:
        stored = (await conn.scalars(select(api_token.c.token_hash))).all()
    assert token not in stored and all(len(h) == 64 for h in stored)


@pytest.mark.parametrize("user", ["alice", "nosuchuser"])
async def test_wrong_password_is_401_and_audited(strict_app: FastAPI, user: str):
    """A wrong password and an unknown user get the same 401; the failure is audited."""
    async with _client(strict_app) as client:
        answer = await _login(client, user, "wrong password")
    assert answer.status_code == 401
    assert answer.json()["error"]["reason"] == "wrong username or password"
    async with strict_app.state.engine.connect() as conn:
        rows = (await conn.execute(select(audit_log))).mappings().all()
    failed = [r for r in rows if r["action"] == "login.failed"]
    assert [(r["username"], r["client"]) for r in failed] == [(user, "10.0.0.7")]


async def test_failed_logins_are_throttled_per_user(strict_app: FastAPI):
    """After the free failures a user is blocked (429, Retry-After), even with the right password,
    and from any address; another user is not affected."""
    async with _client(strict_app) as client:
        codes = [(await _login(client, "alice", "bad")).status_code for _ in range(3)]
        assert codes == [401, 401, 401]
        blocked = await _login(client, "alice")
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        assert (await _login(client, "bob")).status_code == 201
    async with _client(strict_app, "10.9.9.9") as elsewhere:
        assert (await _login(elsewhere, "alice")).status_code == 429
    await asyncio.sleep(1.1)  # the first wait is 1 s
    async with _client(strict_app, "10.9.9.9") as elsewhere:
        assert (await _login(elsewhere, "alice")).status_code == 201


async def test_failed_logins_are_throttled_per_address(strict_app: FastAPI):
    """Guessing many usernames from one address blocks that address, not others."""
    async with _client(strict_app, "10.6.6.6") as client:
        for i in range(5):
            assert (await _login(client, f"guess{i}", "bad")).status_code == 401
        assert (await _login(client, "bob")).status_code == 429
    async with _client(strict_app, "10.7.7.7") as other:
        assert (await _login(other, "bob")).status_code == 201


async def test_revoked_and_expired_tokens_stop_working(strict_app: FastAPI):
    """A revoked token and an expired one both answer 401."""
    async with _client(strict_app) as client:
        first = (await _login(client, "alice")).json()
        second = (await _login(client, "alice")).json()
        h1 = {"Authorization": f"Bearer {first['token']}"}
        h2 = {"Authorization": f"Bearer {second['token']}"}
        revoked = await client.delete(f"/api/v1/auth/tokens/{first['id']}", headers=h2)
        assert revoked.status_code == 200 and revoked.json()["revoked_us"] > 0
        assert (await client.get("/api/v1/me", headers=h1)).status_code == 401
        async with strict_app.state.engine.begin() as conn:
            await conn.execute(
                update(api_token)
                .where(api_token.c.id == second["id"])
                .values(expires_us=now_us() - 1)
            )
        assert (await client.get("/api/v1/me", headers=h2)).status_code == 401


async def test_tokens_of_others_cannot_be_revoked(strict_app: FastAPI):
    """Bob cannot see or revoke Alice's token (404)."""
    async with _client(strict_app) as client:
        alice = (await _login(client, "alice")).json()
        bob = (await _login(client, "bob")).json()
        h = {"Authorization": f"Bearer {bob['token']}"}
        assert (
            await client.delete(f"/api/v1/auth/tokens/{alice['id']}", headers=h)
        ).status_code == 404
        ids = [t["id"] for t in (await client.get("/api/v1/auth/tokens", headers=h)).json()]
        assert alice["id"] not in ids


async def test_token_lifetime_is_bounded(strict_app: FastAPI):
    """A token may ask for fewer days than the setting allows, not more."""
    async with _client(strict_app) as client:
        body = {"username": "alice", "password": PASSWORD}
        short = await client.post("/api/v1/auth/token", json=body | {"expires_in_days": 1})
        assert short.status_code == 201
        assert 0 < short.json()["expires_us"] - now_us() <= 86400 * 10**6
        long = await client.post("/api/v1/auth/token", json=body | {"expires_in_days": 100000})
        assert long.status_code == 422 and long.json()["error"]["field"] == "expires_in_days"


async def test_change_password(strict_app: FastAPI):
    """After a change the old password fails and the new one works; the current one is checked."""
    async with _client(strict_app) as client:
        h = {"Authorization": f"Bearer {(await _login(client, 'alice')).json()['token']}"}
        wrong = await client.post(
            "/api/v1/me/password",
            json={"current_password": "nope", "new_password": "new password 1"},
            headers=h,
        )
        assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "current_password"
        short = await client.post(
            "/api/v1/me/password",
            json={"current_password": PASSWORD, "new_password": "x"},
            headers=h,
        )
        assert short.status_code == 422 and short.json()["error"]["field"] == "new_password"
        done = await client.post(
            "/api/v1/me/password",
            json={"current_password": PASSWORD, "new_password": "new password 1"},
            headers=h,
        )
        assert done.status_code == 204
        assert (await _login(client, "alice")).status_code == 401
        assert (await _login(client, "alice", "new password 1")).status_code == 201


async def test_disabled_user_cannot_log_in(strict_app: FastAPI):
    """A disabled account gets the same 401 as a wrong password."""
    root_id, root_token = await add_user(strict_app.state.engine, "root", superadmin=True)
    del root_id
    async with _client(strict_app) as client:
        users = (
            await client.get("/api/v1/users", headers={"Authorization": f"Bearer {root_token}"})
        ).json()
        alice = next(u for u in users if u["name"] == "alice")
        answer = await client.patch(
            f"/api/v1/users/{alice['id']}",
            json={"status": 0},
            headers={"Authorization": f"Bearer {root_token}"},
        )
        assert answer.status_code == 200
        assert (await _login(client, "alice")).status_code == 401


async def test_openapi_documents_the_api(api: httpx.AsyncClient):
    """The generated OpenAPI document lists the resources and the bearer scheme."""
    doc = (await api.get("/api/v1/openapi.json")).json()
    for path in (
        "/api/v1/auth/token",
        "/api/v1/rules/{task_id}/run",
        "/api/v1/runs/{run_id}/kill",
        "/api/v1/groups",
        "/api/v1/agents",
        "/api/v1/users",
        "/api/v1/grants",
    ):
        assert path in doc["paths"], path
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    assert not any(p.startswith("/rules") for p in doc["paths"]), "pages stay out of the API doc"
