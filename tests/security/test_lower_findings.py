"""The review's lower findings, each as the attack: big anonymous bodies, login-name variants,
forwarded addresses, tokens after a reset, terminal escapes, huge ids, the docs page's CDN
script, and a world-readable outbox."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from admin.app import create_app
from admin.main import server_for
from agent.outbox import FILE_NAME, Outbox
from center.run_listing import format_run
from tests.admin.conftest import BASE_URL, admin_config
from tests.admin.seed import PASSWORD, add_user
from tests.admin.server import running_admin


@pytest.fixture
async def tight_app(db_url: str) -> AsyncIterator[FastAPI]:
    """The app with 2 free login failures per user, a user alice, and a superadmin root."""
    app = create_app(admin_config(db_url, admin_login_free_failures=2))
    await add_user(app.state.engine, "alice", roles={})
    await add_user(app.state.engine, "root", superadmin=True)
    try:
        yield app
    finally:
        async with asyncio.timeout(10):
            await app.state.engine.dispose()


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 4000))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=10)


async def _login(client: httpx.AsyncClient, user: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/token", json={"username": user, "password": password})


async def test_a_huge_anonymous_body_is_refused_unread(tight_app: FastAPI) -> None:
    """A 400 MB body announced by an anonymous client gets 413 at once; a small anonymous one
    to the API gets 401 before the app parses it."""
    async with running_admin(tight_app) as base:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
        writer.write(
            b"POST /api/v1/rules HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 419430400\r\n\r\n{"
        )
        await writer.drain()
        async with asyncio.timeout(5):
            status_line = await reader.readline()
        writer.close()
        assert b" 413 " in status_line
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            answer = await client.post("/api/v1/rules", json={"name": "x"})
        assert answer.status_code == 401


async def test_name_variants_share_the_throttle_and_never_match_another_user(
    tight_app: FastAPI,
) -> None:
    """Full-width and upper-case spellings of alice are alice (one throttle); an accented one is
    nobody, even with alice's password and a collation that would match it."""
    async with _client(tight_app) as client:
        assert (await _login(client, "ａｌｉｃｅ", PASSWORD)).status_code == 201
        assert (await _login(client, "álice", PASSWORD)).status_code == 401
        for variant in ("ALICE", "ａｌｉｃｅ", "Alice"):
            assert (await _login(client, variant, "wrong")).status_code == 401
        assert (await _login(client, "alice", PASSWORD)).status_code == 429


def test_forwarded_addresses_are_believed_from_named_proxies_only(db_url: str) -> None:
    """By default no peer, local or not, may set its client address with X-Forwarded-For."""
    assert server_for(admin_config(db_url)).config.proxy_headers is False
    proxied = server_for(admin_config(db_url, admin_trusted_proxies="10.1.1.1"))
    assert proxied.config.proxy_headers is True
    assert proxied.config.forwarded_allow_ips == "10.1.1.1"


async def test_a_password_reset_ends_the_users_tokens(tight_app: FastAPI) -> None:
    """A token made with the old password stops working when a superadmin resets it."""
    async with _client(tight_app) as client:
        alice = (await _login(client, "alice", PASSWORD)).json()["token"]
        root = (await _login(client, "root", PASSWORD)).json()["token"]
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {alice}"})
        users = await client.get("/api/v1/users", headers={"Authorization": f"Bearer {root}"})
        alice_id = next(u["id"] for u in users.json() if u["name"] == "alice")
        reset = await client.patch(
            f"/api/v1/users/{alice_id}",
            json={"password": "a brand new passphrase"},
            headers={"Authorization": f"Bearer {root}"},
        )
        after = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {alice}"})
    assert me.status_code == 200 and reset.status_code == 200
    assert after.status_code == 401


async def test_huge_ids_are_a_field_error(tight_app: FastAPI) -> None:
    """`agents: [2**63]` names the field (422), it does not reach the database (500)."""
    async with _client(tight_app) as client:
        root = (await _login(client, "root", PASSWORD)).json()["token"]
        answer = await client.post(
            "/api/v1/rules",
            json={"gid": 1, "name": "x", "rule": "* * * * *", "execute": "true", "agents": [2**63]},
            headers={"Authorization": f"Bearer {root}"},
        )
    assert answer.status_code == 422 and "agents" in answer.text


async def test_no_docs_page_loads_a_third_party_script(tight_app: FastAPI) -> None:
    """The OpenAPI document is served; the Swagger page (a CDN script) is not."""
    async with _client(tight_app) as client:
        assert (await client.get("/api/v1/openapi.json")).status_code == 200
        assert (await client.get("/api/v1/docs")).status_code == 404


def test_runs_listing_shows_escapes_not_terminal_control() -> None:
    """A job that prints an escape sequence cannot retitle or clear the operator's terminal."""
    row = {
        "start": 2,
        "end": 3,
        "sched_us": 1,
        "result": "\x1b]0;pwned\x07\x1b[2Jok",
        "reason": "",
        "code": 0,
        "rule_name": "r\x1b[31m",
        "task_id": 1,
        "agent_name": "a",
        "aid": 1,
        "status": "success",
    }
    line = format_run(row)
    assert "\x1b" not in line and "\x07" not in line
    assert "\\x1b]0;pwned" in line


def test_the_outbox_is_private_in_an_open_state_dir(tmp_path: Path) -> None:
    """A state dir made 0755 beforehand is closed, and the outbox files are the agent's only."""
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    outbox = Outbox.open(state)
    outbox.close()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for path in state.glob(f"{FILE_NAME}*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
