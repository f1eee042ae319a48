"""Session fixation, stolen cookies after logout, and throttled logins on the login page."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from admin import credentials
from admin.app import create_app
from admin.main import server_for
from center.tables import admin_session, audit_log
from tests.admin.conftest import admin_config
from tests.admin.seed import PASSWORD, World, add_user
from tests.security.helpers import CSRF_RE, api_client, changed_tables, snapshot


async def _form_login(client: httpx.AsyncClient, user: str, password: str = PASSWORD):
    """The login form as a browser posts it: its own CSRF cookie and field."""
    await client.get("/login")
    form = {"username": user, "password": password, "login_csrf": client.cookies["uc_login"]}
    return await client.post("/login", data=form)


async def _sessions(app: FastAPI) -> list[str]:
    async with app.state.engine.connect() as conn:
        return list((await conn.scalars(select(admin_session.c.id_hash))).all())


async def test_a_planted_session_id_never_becomes_valid(app: FastAPI, world: World):
    """An id an attacker plants in the victim's browser before login is replaced at login and
    never stored: the attacker cannot ride the victim's session with it."""
    planted = credentials.new_secret()
    async with api_client(app) as victim:
        victim.cookies.set("uc_session", planted, domain="admin.test")
        assert (await _form_login(victim, "root")).status_code == 303
        assert victim.cookies["uc_session"] != planted
        assert credentials.digest(planted) not in await _sessions(app)
    async with api_client(app) as attacker:
        attacker.cookies.set("uc_session", planted, domain="admin.test")
        answer = await attacker.get("/users")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


async def test_a_cookie_stolen_after_logout_is_refused(app: FastAPI, world: World):
    """Logout deletes the session row; the old cookie and CSRF token then open no page, post
    no form and reach no API; nothing changes."""
    async with api_client(app) as victim:
        await _form_login(victim, "root")
        stolen = victim.cookies["uc_session"]
        token = CSRF_RE.search((await victim.get("/account")).text).group(1)  # type: ignore[union-attr]
        assert len(await _sessions(app)) == 1
        assert (await victim.post("/logout", data={"csrf": token})).status_code == 303
    assert await _sessions(app) == []
    before = await snapshot(app.state.engine)
    async with api_client(app) as thief:
        thief.cookies.set("uc_session", stolen, domain="admin.test")
        page = await thief.get("/account")
        post = await thief.post("/groups", data={"csrf": token, "name": "stolen"})
        api = await thief.get("/api/v1/me")
    assert page.status_code == 303 and post.status_code == 303 and api.status_code == 401
    assert changed_tables(before, await snapshot(app.state.engine)) == []


async def test_a_session_cookie_is_no_api_credential(app: FastAPI, world: World):
    """The API takes bearer tokens only: a logged-in browser's cookie (which a forged
    cross-site request would carry) authenticates nothing there."""
    async with api_client(app) as browser:
        await _form_login(browser, "root")
        answer = await browser.post("/api/v1/groups", json={"name": "forged"})
    assert answer.status_code == 401


@pytest.fixture
async def strict_app(db_url: str) -> AsyncIterator[FastAPI]:
    """Two free failures per user name, four per address; then 1 s, 2 s, 4 s, ..."""
    app = create_app(
        admin_config(db_url, admin_login_free_failures=2, admin_login_addr_free_failures=4)
    )
    await add_user(app.state.engine, "alice")
    await add_user(app.state.engine, "bob")
    try:
        yield app
    finally:
        async with asyncio.timeout(10):
            await app.state.engine.dispose()


async def test_the_login_page_throttles_a_user(strict_app: FastAPI):
    """Guessing one user's password on the page, under any spelling of the name and from any
    address: 429 with Retry-After, and the right password is refused too while it lasts."""
    async with api_client(strict_app, "10.1.1.1") as one, api_client(strict_app, "10.2.2.2") as two:
        spellings = ["alice", " ALICE", "Alice "]
        codes = [(await _form_login(one, name, "wrong password")).status_code for name in spellings]
        assert codes == [401, 401, 401]
        for client in (one, two):
            blocked = await _form_login(client, "alice")
            assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
            assert "uc_session" not in client.cookies
        assert (await _form_login(two, "bob")).status_code == 303
    async with strict_app.state.engine.connect() as conn:
        query = (
            select(func.count()).select_from(audit_log).where(audit_log.c.action == "login.failed")
        )
        assert await conn.scalar(query) == 5  # three wrong passwords, two throttled tries


async def test_the_login_page_throttles_an_address(strict_app: FastAPI):
    """Guessing many user names from one address blocks that address (the right password
    included), not the users elsewhere."""
    async with api_client(strict_app, "10.6.6.6") as guesser:
        for i in range(5):
            assert (await _form_login(guesser, f"guess{i}", "wrong")).status_code == 401
        blocked = await _form_login(guesser, "bob")
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    async with api_client(strict_app, "10.7.7.7") as other:
        assert (await _form_login(other, "bob")).status_code == 303


def _outside_address() -> str | None:
    """An address of this host other than loopback: a peer the admin must not trust."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route's address
        address = s.getsockname()[0]
        return None if address.startswith("127.") else address
    return None


@contextlib.asynccontextmanager
async def _production_server(app_db_url: str) -> AsyncIterator[int]:
    """The admin as `unitedcron admin` serves it (uvloop aside): proxy headers trusted from
    loopback only; on all addresses, port 0."""
    cfg = admin_config(
        app_db_url,
        admin_listen="0.0.0.0:0",
        admin_login_free_failures=2,
        admin_login_addr_free_failures=4,
    )
    server = server_for(cfg)
    server.config.loop = "asyncio"
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    await task  # raises what stopped it
                await asyncio.sleep(0.02)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task


async def test_a_forged_forwarded_for_does_not_dodge_the_address_throttle(db_url: str):
    """A client that is not a proxy on this host sends a new X-Forwarded-For with each guess:
    the admin counts its real address and blocks it all the same."""
    address = _outside_address()
    if address is None:
        pytest.skip("this host has no address besides loopback")
    app = create_app(admin_config(db_url))
    await add_user(app.state.engine, "bob")
    await app.state.engine.dispose()
    async with _production_server(db_url) as port:
        base = f"http://{address}:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as guesser:
            for i in range(5):
                guesser.headers["X-Forwarded-For"] = f"203.0.113.{i}"
                assert (await _form_login(guesser, f"guess{i}", "wrong")).status_code == 401
            guesser.headers["X-Forwarded-For"] = "203.0.113.99"
            assert (await _form_login(guesser, "bob")).status_code == 429
