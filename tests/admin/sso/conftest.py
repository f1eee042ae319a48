"""SSO fixtures: a private slapd, a real OIDC provider, and the admin app configured for both."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from admin.app import create_app
from tests.admin.conftest import BASE_URL, admin_config
from tests.admin.seed import PASSWORD, World, build_world
from tests.admin.sso.directory import Directory, running_slapd, slapd_missing_reason
from tests.admin.sso.provider import running_provider
from tests.admin.test_browser import browser  # noqa: F401  (the Chromium fixture, shared)

# One map for both: UnitedCron group → directory group → role.
ROLE_MAP = {"alpha": {"ops": "operator", "ops-team": "operator", "leads": "admin"}, "beta": {}}


@pytest.fixture(scope="session")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    """slapd with alice (ops, leads), bob (ops) and carol (no group); skipped without slapd,
    except under CI=true."""
    reason = slapd_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with running_slapd(tmp_path_factory.mktemp("slapd")) as found:
        yield found


@pytest.fixture(scope="session")
def issuer() -> Iterator[str]:
    with running_provider() as url:
        yield url


def sso_settings(directory: Directory | None, issuer: str | None, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if directory is not None:
        values |= {
            "admin_ldap_url": directory.url,
            "admin_ldap_user_dn_template": f"uid={{name}},{directory.people}",
            "admin_ldap_group_base": directory.groups,
            "admin_ldap_group_filter": "(member={dn})",
            "admin_ldap_role_map": ROLE_MAP,
        }
    if issuer is not None:
        values |= {
            "admin_oidc_issuer": issuer,
            "admin_oidc_client_id": "unitedcron-test",
            "admin_oidc_client_secret": "test client secret",
            "admin_oidc_provider_name": "Test IdP",
            "admin_oidc_role_map": ROLE_MAP,
        }
    return values | extra


async def make_app(db_url: str, **settings: Any) -> FastAPI:
    return create_app(admin_config(db_url, admin_metrics_listen="", **settings))


@contextlib.asynccontextmanager
async def running_app(db_url: str, **settings: Any) -> AsyncIterator[FastAPI]:
    application = create_app(admin_config(db_url, admin_metrics_listen="", **settings))
    try:
        yield application
    finally:
        async with asyncio.timeout(10):
            await application.state.engine.dispose()


def client_of(application: FastAPI) -> httpx.AsyncClient:
    """A browser-like client of the app in this process: cookies kept, redirects not followed."""
    transport = httpx.ASGITransport(app=application, client=("10.0.0.9", 4444))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=10)


@pytest.fixture
async def ldap_app(db_url: str, directory: Directory) -> AsyncIterator[FastAPI]:
    async with running_app(db_url, **sso_settings(directory, None)) as application:
        yield application


@pytest.fixture
async def oidc_app(db_url: str, issuer: str) -> AsyncIterator[FastAPI]:
    async with running_app(db_url, **sso_settings(None, issuer)) as application:
        yield application


async def seeded(application: FastAPI) -> World:
    async with asyncio.timeout(30):
        return await build_world(application.state.engine)


async def form_login(
    client: httpx.AsyncClient, name: str, password: str = PASSWORD
) -> httpx.Response:
    """The login form, as a browser fills it in: its CSRF cookie and field, then the POST."""
    async with asyncio.timeout(30):
        page = await client.get("/login")
        found = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
        assert found is not None, page.text
        form = {"login_csrf": found.group(1), "username": name, "password": password, "next": "/"}
        return await client.post("/login", data=form)
