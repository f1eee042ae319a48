"""LDAP bind login against a private slapd: roles from groups, injection refused, local first."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from structlog.testing import capture_logs

from tests.admin.seed import PASSWORD as LOCAL_PASSWORD
from tests.admin.sso.conftest import (
    ROLE_MAP,
    client_of,
    form_login,
    running_app,
    seeded,
    sso_settings,
)
from tests.admin.sso.directory import PASSWORD, Directory
from tests.admin.sso.helpers import refusals, roles_by_group, user_row


async def test_ldap_user_logs_in_with_mapped_roles(ldap_app: FastAPI):
    """alice binds with her directory password: she is created as an external user with no
    local password, and her groups (ops, leads) make her admin of alpha (the highest wins)."""
    await seeded(ldap_app)
    async with client_of(ldap_app) as client:
        answer = await form_login(client, "alice", PASSWORD)
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        assert (await client.get("/api/v1/me")).status_code == 401  # pages use the cookie
        assert (await client.get("/groups")).status_code == 200
    row = await user_row(ldap_app.state.engine, "alice")
    assert row is not None
    assert (row["source"], row["external_subject"], row["password_hash"]) == (
        "ldap",
        "uid=alice,ou=people,dc=example,dc=org",
        "",
    )
    assert await roles_by_group(ldap_app.state.engine, "alice") == {"alpha": "admin"}


async def test_roles_follow_the_map_at_every_login(db_url: str, directory: Directory):
    """bob is an operator of alpha; once the map no longer gives ops a role, his next login
    takes the role away."""
    async with running_app(db_url, **sso_settings(directory, None)) as first:
        await seeded(first)
        async with client_of(first) as client:
            assert (await form_login(client, "bob", PASSWORD)).status_code == 303
        assert await roles_by_group(first.state.engine, "bob") == {"alpha": "operator"}
    narrower = {"alpha": {"leads": "admin"}}
    settings = sso_settings(directory, None, admin_ldap_role_map=narrower)
    async with running_app(db_url, **settings) as second:
        async with client_of(second) as client:
            assert (await form_login(client, "bob", PASSWORD)).status_code == 303
        assert await roles_by_group(second.state.engine, "bob") == {}


@pytest.mark.parametrize(
    ("name", "password", "reason"),
    [
        ("alice", "not her password", "wrong_password"),
        ("nosuchuser", PASSWORD, "wrong_password"),
        ("alice", "", "wrong_password"),  # an empty password would be an anonymous bind
        ("*)(uid=*", PASSWORD, "ldap_injection"),
        ("*", PASSWORD, "ldap_injection"),
        ("alice,ou=people", PASSWORD, "ldap_injection"),
    ],
)
async def test_refused_ldap_logins(ldap_app: FastAPI, name: str, password: str, reason: str):
    """Each refusal is one log line, one audit row and one counter step; no session, no user."""
    await seeded(ldap_app)
    metrics = ldap_app.state.metrics
    async with client_of(ldap_app) as client:
        with capture_logs() as logs:
            answer = await form_login(client, name, password)
        assert answer.status_code == 401
        assert "uc_session" not in client.cookies
    lines = [line for line in logs if line["event"] == "admin.login_refused"]
    assert [(line["method"], line["reason"]) for line in lines] == [("ldap", reason)]
    assert metrics.refused("ldap", reason) == 1
    rows = await refusals(ldap_app.state.engine)
    assert [(r["method"], r["code"]) for r in rows] == [("ldap", reason)]
    assert await user_row(ldap_app.state.engine, "alice") is None


async def test_local_accounts_never_go_to_ldap(ldap_app: FastAPI):
    """A local account (break-glass) logs in with its own password even with LDAP configured."""
    await seeded(ldap_app)
    async with client_of(ldap_app) as client:
        assert (await form_login(client, "root", LOCAL_PASSWORD)).status_code == 303
    async with client_of(ldap_app) as client:
        assert (await form_login(client, "admin", PASSWORD)).status_code == 401
    assert [r["method"] for r in await refusals(ldap_app.state.engine)] == ["local"]


async def test_search_then_bind(db_url: str, directory: Directory):
    """Without a DN template the service account finds the user's DN, then binds as them."""
    settings = sso_settings(
        directory,
        None,
        admin_ldap_user_dn_template="",
        admin_ldap_bind_dn=directory.service_dn,
        admin_ldap_bind_password=directory.service_password,
        admin_ldap_user_base=directory.people,
    )
    async with running_app(db_url, **settings) as application:
        await seeded(application)
        async with client_of(application) as client:
            assert (await form_login(client, "bob", PASSWORD)).status_code == 303
        async with client_of(application) as client:
            assert (await form_login(client, "carol", "wrong")).status_code == 401
        assert await roles_by_group(application.state.engine, "bob") == {
            "alpha": ROLE_MAP["alpha"]["ops"]
        }
