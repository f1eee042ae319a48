"""TOTP for local accounts: required by an admin, enrolled at login, a code asked after the
password, wrong and replayed codes refused and throttled; API tokens need the code too."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import httpx
import pyotp
import pytest
from fastapi import FastAPI

from tests.admin.seed import PASSWORD, World
from tests.admin.sso.conftest import client_of, form_login, running_app, seeded
from tests.admin.sso.helpers import refusals, user_row

KEY = "a test key for TOTP secrets at rest"


@pytest.fixture
async def totp_app(db_url: str) -> AsyncIterator[FastAPI]:
    async with running_app(db_url, admin_totp_key=KEY, admin_login_free_failures=3) as app:
        yield app


async def _require(client: httpx.AsyncClient, world: World, user: str) -> None:
    answer = await client.patch(
        f"/api/v1/users/{world.user_ids[user]}",
        json={"totp_required": True},
        headers=world.auth("root"),
    )
    assert answer.status_code == 200 and answer.json()["totp_required"] == 1, answer.text


async def _post_code(client: httpx.AsyncClient, stage: str, code: str, **extra: str):
    page = await client.get(f"/login/{stage}?next=/rules")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text
    form = {"csrf": found.group(1), "code": code, "next": "/rules"} | extra
    return await client.post(f"/login/{stage}", data=form)


async def _enrol(app: FastAPI, user: str) -> str:
    """Log in with the password, get sent to enrolment, enrol; the secret."""
    async with client_of(app) as client:
        answer = await form_login(client, user)
        assert answer.headers["location"] == "/login/enrol?next=%2F"
        page = await client.get("/login/enrol")
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
        assert secret is not None
        code = pyotp.TOTP(secret.group(1)).now()
        done = await _post_code(client, "enrol", code, secret=secret.group(1))
        assert done.status_code == 303 and done.headers["location"] == "/rules", done.text
        assert (await client.get("/rules")).status_code == 200
    return secret.group(1)


async def test_required_totp_is_enrolled_then_asked(totp_app: FastAPI):
    """An admin requires TOTP; the user enrols after the password, the secret is stored
    sealed; the next login asks for the code: a wrong one is refused (log, audit, counter),
    the next step's code lets them in."""
    async with asyncio.timeout(60):
        world = await seeded(totp_app)
        async with client_of(totp_app) as admin:
            await _require(admin, world, "operator")
        secret = await _enrol(totp_app, "operator")
        row = await user_row(totp_app.state.engine, "operator")
        assert row is not None and row["totp_secret"].startswith("fernet:")
        assert secret not in row["totp_secret"]
        async with client_of(totp_app) as client:
            answer = await form_login(client, "operator")
            assert answer.headers["location"] == "/login/totp?next=%2F"
            assert (await client.get("/rules")).status_code == 303  # not logged in yet
            assert (await _post_code(client, "totp", "000000")).status_code == 401
            later = pyotp.TOTP(secret).at(time.time() + 30)
            assert (await _post_code(client, "totp", later)).status_code == 303
            assert (await client.get("/rules")).status_code == 200
    assert totp_app.state.metrics.refused("totp", "wrong_code") == 1
    assert [(r["method"], r["code"]) for r in await refusals(totp_app.state.engine)] == [
        ("totp", "wrong_code")
    ]


async def test_wrong_and_replayed_codes_are_throttled(totp_app: FastAPI):
    """A code is good once; wrong codes count on the login throttle, which then blocks even
    a right code (429)."""
    async with asyncio.timeout(60):
        world = await seeded(totp_app)
        async with client_of(totp_app) as admin:
            await _require(admin, world, "viewer")
        secret = await _enrol(totp_app, "viewer")
        async with client_of(totp_app) as client:
            await form_login(client, "viewer")
            used = pyotp.TOTP(secret).at(time.time() - 30)  # at most the enrolment's step
            assert (await _post_code(client, "totp", used)).status_code == 401
            for _ in range(3):  # 3 free failures (the fixture's setting), then a block
                assert (await _post_code(client, "totp", "123456")).status_code == 401
            good = pyotp.TOTP(secret).at(time.time() + 30)
            assert (await _post_code(client, "totp", good)).status_code == 429
    assert totp_app.state.metrics.refused("totp", "wrong_code") == 4
    assert totp_app.state.metrics.refused("totp", "throttled") == 1


async def test_api_tokens_need_the_code(totp_app: FastAPI):
    """POST /auth/token for an account with TOTP wants totp_code; bearer tokens already made
    keep working."""
    async with asyncio.timeout(60):
        world = await seeded(totp_app)
        async with client_of(totp_app) as admin:
            await _require(admin, world, "admin")
        secret = await _enrol(totp_app, "admin")
        async with client_of(totp_app) as api:
            body = {"username": "admin", "password": PASSWORD}
            assert (await api.post("/api/v1/auth/token", json=body)).status_code == 401
            body["totp_code"] = pyotp.TOTP(secret).at(time.time() + 30)
            assert (await api.post("/api/v1/auth/token", json=body)).status_code == 201
            assert (await api.get("/api/v1/me", headers=world.auth("admin"))).status_code == 200


async def test_forged_code_posts_are_refused(totp_app: FastAPI):
    """A TOTP step posted without the staged session's CSRF token is refused (403) and does
    not log in, even with the right code."""
    async with asyncio.timeout(60):
        world = await seeded(totp_app)
        async with client_of(totp_app) as admin:
            await _require(admin, world, "operator")
        secret = await _enrol(totp_app, "operator")
        async with client_of(totp_app) as client:
            await form_login(client, "operator")
            good = pyotp.TOTP(secret).at(time.time() + 30)
            form = {"csrf": "forged", "code": good, "next": "/"}
            answer = await client.post("/login/totp", data=form)
            assert answer.status_code == 403 and "CSRF" in answer.text
            assert (await client.get("/rules")).status_code == 303
