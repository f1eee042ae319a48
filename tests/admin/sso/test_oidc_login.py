"""OpenID Connect login against a real provider: the whole code flow with PKCE, roles from the
groups claim, and forged or mismatched state and nonce refused."""

from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI
from structlog.testing import capture_logs

from tests.admin.sso.conftest import client_of, seeded
from tests.admin.sso.helpers import refusals, roles_by_group, user_row


async def _to_provider(client: httpx.AsyncClient) -> str:
    """Press "Sign in with …": the admin sends the browser to the provider."""
    answer = await client.get("/auth/oidc/start?next=/groups")
    assert answer.status_code == 303, answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    return answer.headers["location"]


async def _authorize(url: str, sub: str) -> str:
    """The user picks their account at the provider; the callback URL it sends them back to."""
    async with httpx.AsyncClient(timeout=10) as provider:
        answer = await provider.post(url, data={"sub": sub})
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def _callback(client: httpx.AsyncClient, url: str) -> httpx.Response:
    parts = urlsplit(url)
    return await client.get(f"{parts.path}?{parts.query}")


async def test_oidc_user_is_created_with_mapped_roles(oidc_app: FastAPI):
    """dana signs in at the provider: she is created as an external user (no password) and her
    groups (ops-team, leads) make her admin of alpha."""
    await seeded(oidc_app)
    async with asyncio.timeout(30), client_of(oidc_app) as client:
        page = await client.get("/login")
        assert "Sign in with Test IdP" in page.text
        answer = await _callback(client, await _authorize(await _to_provider(client), "dana-sub"))
        assert answer.status_code == 303 and answer.headers["location"] == "/groups", answer.text
        assert (await client.get("/groups")).status_code == 200
    row = await user_row(oidc_app.state.engine, "dana")
    assert row is not None
    assert (row["source"], row["external_subject"], row["password_hash"]) == (
        "oidc",
        "dana-sub",
        "",
    )
    assert await roles_by_group(oidc_app.state.engine, "dana") == {"alpha": "admin"}


async def test_forged_state_is_refused(oidc_app: FastAPI):
    """A callback whose state is not this browser's (a login CSRF) is refused: one log line,
    one audit row, one counter step, and no session and no user."""
    await seeded(oidc_app)
    async with asyncio.timeout(30), client_of(oidc_app) as client:
        callback = await _authorize(await _to_provider(client), "erin-sub")
        forged = callback.replace("state=", "state=forged")
        with capture_logs() as logs:
            answer = await _callback(client, forged)
        assert answer.status_code == 401 and "uc_session" not in client.cookies
    assert _refused(logs) == [("oidc", "state_mismatch")]
    assert oidc_app.state.metrics.refused("oidc", "state_mismatch") == 1
    assert [r["code"] for r in await refusals(oidc_app.state.engine)] == ["state_mismatch"]
    assert await user_row(oidc_app.state.engine, "erin") is None


async def test_callback_without_a_started_login_is_refused(oidc_app: FastAPI):
    """A browser that never started a sign-in (no pending cookie) cannot finish one."""
    async with asyncio.timeout(30), client_of(oidc_app) as starter:
        callback = await _authorize(await _to_provider(starter), "erin-sub")
    async with asyncio.timeout(30), client_of(oidc_app) as victim:
        assert (await _callback(victim, callback)).status_code == 401
    assert oidc_app.state.metrics.refused("oidc", "state_mismatch") == 1


async def test_mismatched_nonce_is_refused(oidc_app: FastAPI):
    """An ID token whose nonce is not the one this browser's login was started with is
    refused, with the same three records; the user is not created."""
    async with asyncio.timeout(30), client_of(oidc_app) as client:
        callback = await _authorize(await _to_provider(client), "erin-sub")
        pending = json.loads(base64.urlsafe_b64decode(client.cookies["uc_oidc"]))
        pending["nonce"] = "another nonce"
        forged = base64.urlsafe_b64encode(json.dumps(pending).encode()).decode()
        client.cookies.set("uc_oidc", forged, domain="admin.test")
        with capture_logs() as logs:
            answer = await _callback(client, callback)
        assert answer.status_code == 401
    assert _refused(logs) == [("oidc", "nonce_mismatch")]
    assert oidc_app.state.metrics.refused("oidc", "nonce_mismatch") == 1
    assert [r["code"] for r in await refusals(oidc_app.state.engine)] == ["nonce_mismatch"]
    assert await user_row(oidc_app.state.engine, "erin") is None


async def test_oidc_cannot_take_a_local_account(oidc_app: FastAPI):
    """A provider user whose name is a local account's is refused (name_taken), not logged in
    as the local user."""
    await seeded(oidc_app)
    async with asyncio.timeout(30), client_of(oidc_app) as client:
        answer = await _callback(client, await _authorize(await _to_provider(client), "root-sub"))
        assert answer.status_code == 401 and "uc_session" not in client.cookies
    assert oidc_app.state.metrics.refused("oidc", "name_taken") == 1


def _refused(logs: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(x["method"], x["reason"]) for x in logs if x["event"] == "admin.login_refused"]
