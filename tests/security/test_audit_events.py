"""Security events in the audit log: failed logins, refused permissions, refused handshakes."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from center.tables import audit_log
from protocol.errors import AuthError, ConnectionClosed
from protocol.messages import Auth, Challenge, Hello
from protocol.stream import Connection, open_handshake
from protocol.tls import material_context
from tests.admin.seed import World
from tests.integration.cluster import poll, running_center
from tests.security.helpers import csrf_of, session_client

# TLS as an agent that has not enrolled yet: no certificate, none checked.
ENROLLING = material_context(None, "", server=False)


async def _audit(engine: AsyncEngine, action: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        query = select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id)
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def test_failed_logins_are_audited(app: FastAPI, api: httpx.AsyncClient, world: World):
    """Wrong passwords on the API and on the page: one row each, with the name and address."""
    await api.post("/api/v1/auth/token", json={"username": "viewer", "password": "wrong pass"})
    await api.get("/login")
    form = {"username": "ghost", "password": "wrong", "login_csrf": api.cookies["uc_login"]}
    await api.post("/login", data=form)
    rows = await _audit(app.state.engine, "login.failed")
    assert [(r["username"], r["client"]) for r in rows] == [
        ("viewer", "10.0.0.7"),
        ("ghost", "10.0.0.7"),
    ]
    assert all('"wrong username or password"' in r["after_json"] for r in rows)


async def test_refused_permissions_are_audited(app: FastAPI, api: httpx.AsyncClient, world: World):
    """Another group's rule (404) and a role too low (403), on the API and the pages: a
    `permission.refused` row each, in the object's group, readable by its admins only."""
    ids = world.ids
    hidden = await api.get(f"/api/v1/rules/{ids['rule_b']}", headers=world.auth("operator"))
    low = await api.post(f"/api/v1/rules/{ids['rule_a']}/run", headers=world.auth("viewer"))
    page = await session_client(app, world.user_ids["operator"])
    on_page = await page.post(
        f"/agents/{ids['agent_b']}/delete", data={"csrf": await csrf_of(page)}
    )
    await page.aclose()
    assert (hidden.status_code, low.status_code, on_page.status_code) == (404, 403, 404)
    rows = await _audit(app.state.engine, "permission.refused")
    seen = [(r["username"], r["object_type"], r["object_id"], r["gid"]) for r in rows]
    assert seen == [
        ("operator", "rule", str(ids["rule_b"]), world.beta),
        ("viewer", "rule", str(ids["rule_a"]), world.alpha),
        ("operator", "agent", str(ids["agent_b"]), world.beta),
    ]
    assert '"status": 404' in rows[0]["after_json"] and '"action": "run"' in rows[1]["after_json"]
    assert all(r["client"] == "10.0.0.7" for r in rows)
    for reader, expected in (("beta_admin", 2), ("admin", 1), ("root", 3), ("operator", 0)):
        listed = await api.get("/api/v1/audit?limit=1000", headers=world.auth(reader))
        refused = [e for e in listed.json() if e["action"] == "permission.refused"]
        assert len(refused) == expected, reader


async def _wrong_proof(port: int) -> None:
    """A client without the secret that answers the challenge with a made-up proof."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ENROLLING)
    conn = Connection(reader, writer)
    try:
        conn.send(Hello(role="agent", name="intruder", nonce=os.urandom(32)))
        await conn.drain()
        assert isinstance(await conn.recv(), Challenge)
        conn.send(Auth(proof=os.urandom(32)))
        await conn.drain()
        with pytest.raises((ConnectionClosed, AuthError)):
            while True:
                await conn.recv()  # an error frame, then the close
    finally:
        await conn.close()


async def _wrong_secret(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ENROLLING)
    conn = Connection(reader, writer)
    try:
        with pytest.raises(AuthError):
            await open_handshake(conn, (b"not-the-cluster-secret",), role="agent", name="x")
    finally:
        await conn.close()


async def test_refused_handshakes_are_audited(db_url: str, engine: AsyncEngine):
    """A wrong secret and a made-up proof at the registration port: refused, and recorded as
    `handshake.refused` with the peer's address; no agent row appears."""
    async with running_center(db_url) as center, asyncio.timeout(30):
        await _wrong_secret(center.registration_port)
        await _wrong_proof(center.registration_port)
        rows = await poll(lambda: _audit(engine, "handshake.refused"), 10)
    assert rows[0]["client"] == "127.0.0.1" and rows[0]["object_type"] == "center"
    assert "reason" in rows[0]["after_json"]
    async with engine.connect() as conn:
        from center.tables import agents

        assert (await conn.execute(select(agents))).all() == []
