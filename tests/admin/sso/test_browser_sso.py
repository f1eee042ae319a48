"""In headless Chromium: sign in through OIDC and through LDAP (roles from the directory), and
a local account with TOTP enforced (enrol, log in with a code, a wrong code refused)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pyotp
import pytest
from fastapi import FastAPI
from playwright.async_api import BrowserContext, Page, expect

from admin.queries import users
from tests.admin.seed import PASSWORD as LOCAL_PASSWORD
from tests.admin.seed import add_group, add_user
from tests.admin.server import running_admin
from tests.admin.sso.conftest import running_app, sso_settings
from tests.admin.sso.directory import PASSWORD as LDAP_PASSWORD
from tests.admin.sso.directory import Directory
from tests.admin.sso.helpers import roles_by_group
from tests.admin.test_browser import pytestmark as BROWSER_MARKS

# The marks (skipped without Chromium unless CI=true) and the `browser` fixture (see this
# folder's conftest) are the admin browser tests' own.
pytestmark = BROWSER_MARKS


@pytest.fixture
async def sso_app(db_url: str, directory: Directory, issuer: str) -> AsyncIterator[FastAPI]:
    settings = sso_settings(directory, issuer, admin_totp_key="browser test key")
    async with running_app(db_url, **settings) as application:
        await add_group(application.state.engine, "alpha")
        await add_group(application.state.engine, "beta")
        yield application


async def _password_login(page: Page, base: str, name: str, password: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")


async def test_oidc_and_ldap_sign_in(sso_app: FastAPI, browser: BrowserContext):
    """erin signs in with the provider's button and is an operator of alpha (ops-team);
    alice logs in with her LDAP password and is an admin of alpha (leads)."""
    engine = sso_app.state.engine
    async with running_admin(sso_app) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/login")
        await page.click("#oidc-login")  # to the provider's consent page
        await page.click("button[value=erin-sub]")
        await expect(page.locator("#me")).to_have_text("erin")
        await page.goto(f"{base}/groups")
        await expect(page.locator("main")).to_contain_text("alpha")
        await expect(page.locator("main")).not_to_contain_text("beta")
        await page.context.clear_cookies()
        await _password_login(page, base, "alice", LDAP_PASSWORD)
        await expect(page.locator("#me")).to_have_text("alice")
        await page.goto(f"{base}/account")
        await expect(page.locator("#external-account")).to_contain_text("LDAP")
    assert await roles_by_group(engine, "erin") == {"alpha": "operator"}
    assert await roles_by_group(engine, "alice") == {"alpha": "admin"}


async def test_totp_enforced_for_a_local_account(sso_app: FastAPI, browser: BrowserContext):
    """A local account with TOTP required enrols after its password, then logs in with a
    code; a wrong code is refused."""
    engine = sso_app.state.engine
    user_id, _ = await add_user(engine, "breakglass", superadmin=True)
    async with engine.begin() as conn:
        await users.update_user(conn, user_id, {"totp_required": 1}, 0)
    async with running_admin(sso_app) as base:
        page = await browser.new_page()
        await _password_login(page, base, "breakglass", LOCAL_PASSWORD)
        secret = await page.locator("#totp-secret").inner_text()
        await page.fill("#totp-code", pyotp.TOTP(secret).now())
        await page.click("button[type=submit]")
        await expect(page.locator("#me")).to_have_text("breakglass")
        await page.context.clear_cookies()
        await _password_login(page, base, "breakglass", LOCAL_PASSWORD)
        await page.fill("#totp-code", "000000")
        await page.click("button[type=submit]")
        await expect(page.locator("#error")).to_contain_text("wrong or expired code")
        await page.fill("#totp-code", pyotp.TOTP(secret).at(time.time() + 30))
        await page.click("button[type=submit]")
        await expect(page.locator("#me")).to_have_text("breakglass")
    assert sso_app.state.metrics.refused("totp", "wrong_code") == 1
