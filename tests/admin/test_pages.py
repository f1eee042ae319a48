"""The pages: sessions, CSRF on every form, escaping, scoping, rule forms, live output."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from admin import credentials
from admin.services import auth
from admin.services.dashboard import CALENDAR_WARN_DAYS
from center.calendars import builtin
from center.tables import admin_session, center_command, cron_group, crontab, task_process
from tests.admin.conftest import BASE_URL, admin_config
from tests.admin.seed import PASSWORD, World, add_agent, add_output, add_run
from tests.admin.server import running_admin

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


async def _session_client(
    app: FastAPI, world: World, user: str, **headers: str
) -> httpx.AsyncClient:
    """A browser-like client already logged in as `user` (a session made without a password),
    sending `headers` with every request."""
    engine = app.state.engine
    async with engine.connect() as conn:
        actor = await auth.actor_of(conn, world.user_ids[user], "10.0.0.7")
    assert actor is not None
    session_id = await auth.start_session(engine, actor, app.state.config, None)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 5555))
    client = httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=10, headers=headers)
    client.cookies.set("uc_session", session_id, domain="admin.test")
    return client


async def _csrf(client: httpx.AsyncClient, path: str = "/") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return CSRF_RE.search(page.text).group(1)  # type: ignore[union-attr]


async def _login(client: httpx.AsyncClient, user: str, password: str = PASSWORD, next_: str = "/"):
    await client.get("/login")
    form = {"username": user, "password": password, "next": next_}
    form["login_csrf"] = client.cookies.get("uc_login") or ""
    return await client.post("/login", data=form)


async def test_login_sets_a_hardened_cookie_and_stores_only_its_hash(api, world: World, app):
    """Logging in sets an HttpOnly, SameSite=Lax session cookie; the table holds only its hash."""
    answer = await _login(api, "viewer")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("uc_session="))
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Secure" not in cookie
    session_id = api.cookies["uc_session"]
    async with app.state.engine.connect() as conn:
        hashes = (await conn.scalars(select(admin_session.c.id_hash))).all()
    assert hashes == [credentials.digest(session_id)]
    assert (await api.get("/")).status_code == 200


async def test_secure_cookie_setting(db_url: str, world: World):
    """With admin_cookie_secure the session cookie is marked Secure (for HTTPS deployments)."""
    from admin.app import create_app

    app = create_app(admin_config(db_url, admin_cookie_secure=True))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://admin.test") as client:
            answer = await _login(client, "viewer")
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("uc_session=")
        )
        assert "Secure" in cookie
    finally:
        await app.state.engine.dispose()


async def test_login_rotates_the_session(api, world: World, app):
    """A session id the browser had before logging in (planted or old) is replaced and ended."""
    first = await _session_client(app, world, "operator")
    planted = first.cookies["uc_session"]
    await api.get("/login")
    api.cookies.set("uc_session", planted, domain="admin.test")
    form = {"username": "viewer", "password": PASSWORD, "login_csrf": api.cookies["uc_login"]}
    answer = await api.post("/login", data=form)
    assert answer.status_code == 303
    assert api.cookies["uc_session"] != planted
    async with app.state.engine.connect() as conn:
        stored = set((await conn.scalars(select(admin_session.c.id_hash))).all())
    assert credentials.digest(planted) not in stored
    assert (await first.get("/")).status_code == 303  # the old session no longer works
    await first.aclose()


@pytest.mark.parametrize("token", [None, "forged"])
async def test_login_form_needs_its_own_csrf_token(api, world: World, token: str | None):
    """A login posted without the login form's token (login CSRF) starts no session."""
    await api.get("/login")
    form = {"username": "viewer", "password": PASSWORD}
    if token:
        form["login_csrf"] = token
    answer = await api.post("/login", data=form)
    assert answer.status_code == 422 and "uc_session" not in api.cookies


async def test_wrong_password_on_the_page(api, world: World):
    """A wrong password shows the form again with the reason, status 401."""
    answer = await _login(api, "viewer", "bad password")
    assert answer.status_code == 401 and "wrong username or password" in answer.text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
async def test_no_open_redirect_after_login(api, world: World, target: str):
    """`next` may only be a path of this site."""
    answer = await _login(api, "viewer", next_=target)
    assert answer.status_code == 303 and answer.headers["location"] == "/"


async def test_pages_need_a_session(api, world: World):
    """Without a session every page sends the browser to the login form, keeping where it was."""
    answer = await api.get("/rules?gid=1")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Frules%3Fgid%3D1"


FORMS = [
    ("/rules/{rule_a}/run", {}),
    ("/rules/{rule_a}/status", {"status": "0"}),
    ("/rules/{rule_a}/delete", {}),
    ("/groups", {"name": "sneaky"}),
    ("/agents/{pending}/approve", {"gid": "{alpha}"}),
    ("/logout", {}),
]


@pytest.mark.parametrize(("path", "form"), FORMS)
@pytest.mark.parametrize("csrf", [None, "wrong"])
async def test_every_form_checks_csrf(app, world: World, path: str, form: dict, csrf: str | None):
    """A POST without this session's CSRF token is 403 and changes nothing."""
    ids = {"alpha": world.alpha, **world.ids}
    client = await _session_client(app, world, "root")
    data = {k: v.format(**ids) for k, v in form.items()}
    if csrf:
        data["csrf"] = csrf
    async with app.state.engine.connect() as conn:
        before = [
            await conn.scalar(select(func.count()).select_from(t))
            for t in (center_command, cron_group)
        ]
        rule_before = (await conn.execute(select(crontab.c.status, crontab.c.update_time))).all()
    answer = await client.post(path.format(**ids), data=data)
    assert answer.status_code == 403 and "CSRF" in answer.text
    async with app.state.engine.connect() as conn:
        after = [
            await conn.scalar(select(func.count()).select_from(t))
            for t in (center_command, cron_group)
        ]
        assert (
            await conn.execute(select(crontab.c.status, crontab.c.update_time))
        ).all() == rule_before
    assert after == before
    assert (await client.get("/")).status_code == 200  # still logged in
    await client.aclose()


async def test_forms_with_the_token_work(app, world: World):
    """The same POST with the page's token goes through: run now writes a pending command."""
    client = await _session_client(app, world, "operator")
    token = await _csrf(client, f"/rules/{world.ids['rule_a']}")
    answer = await client.post(f"/rules/{world.ids['rule_a']}/run", data={"csrf": token})
    assert answer.status_code == 303
    page = await client.get(f"/rules/{world.ids['rule_a']}")
    assert "pending" in page.text and "run" in page.text
    await client.aclose()


async def test_hostile_names_are_shown_as_text(app, world: World):
    """An agent named <script>alert(1)</script>, and such a rule name and output, are escaped."""
    evil = "<script>alert(1)</script>"
    engine = app.state.engine
    await add_agent(engine, evil, None, status=0)
    async with engine.begin() as conn:
        await conn.execute(
            update(crontab).where(crontab.c.id == world.ids["rule_a"]).values(name=evil, error=evil)
        )
        await conn.execute(
            update(task_process)
            .where(task_process.c.id == world.ids["run_a"])
            .values(status="failed", result=evil, reason=evil)
        )
    client = await _session_client(app, world, "admin")
    for path in (
        "/agents",
        "/rules",
        f"/rules/{world.ids['rule_a']}",
        "/",
        f"/runs/{world.ids['run_a']}",
        "/runs",
    ):
        page = await client.get(path)
        assert page.status_code == 200, path
        assert evil not in page.text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path
        assert "script-src 'self'" in page.headers["content-security-policy"]
    await client.aclose()


async def test_pages_show_only_groups_with_a_role(app, world: World):
    """A beta operator sees beta's rule, not alpha's: not in lists, not by id (404)."""
    client = await _session_client(app, world, "beta_operator")
    listing = await client.get("/rules")
    assert "beta job" in listing.text and "alpha job" not in listing.text
    for path in (
        f"/rules/{world.ids['rule_a']}",
        f"/runs/{world.ids['run_a']}",
        f"/agents/{world.ids['agent_a']}",
        f"/groups/{world.alpha}",
    ):
        assert (await client.get(path)).status_code == 404, path
    dashboard = await client.get("/")
    assert "alpha job" not in dashboard.text
    await client.aclose()


async def test_rule_form_errors_name_the_field_and_keep_the_input(app, world: World):
    """A bad expression re-renders the form (422) naming `rule`; the input is kept, escaped."""
    client = await _session_client(app, world, "admin")
    token = await _csrf(client, "/rules/new")
    form = {
        "csrf": token,
        "gid": str(world.alpha),
        "name": "<b>bold</b>",
        "rule": "every now and then",
        "execute": "/bin/true",
        "status": "1",
    }
    answer = await client.post("/rules/new", data=form)
    assert answer.status_code == 422
    assert '<strong class="field">rule</strong>' in answer.text
    assert 'value="every now and then"' in answer.text and "&lt;b&gt;bold&lt;/b&gt;" in answer.text
    form |= {
        "rule": "*/10 * * * * *",
        "name": "tidy",
        "agents": str(world.ids["agent_a"]),
        "timezone": "Europe/Paris",
    }
    created = await client.post("/rules/new", data=form)
    assert created.status_code == 303
    page = await client.get(created.headers["location"])
    assert "tidy" in page.text and "Europe/Paris" in page.text and "host-a" in page.text
    await client.aclose()


async def test_preview_for_the_form(app, world: World):
    """The form's preview answers JSON: ten fires, or the field at fault."""
    client = await _session_client(app, world, "viewer")
    good = await client.get("/rules/preview", params={"rule": "@daily", "timezone": "Asia/Tokyo"})
    assert len(good.json()["fires"]) == 10 and "JST" in good.json()["fires"][0]
    bad = await client.get("/rules/preview", params={"rule": "0 0 30 2 *"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "rule"
    await client.aclose()


async def test_dashboard_shows_rules_in_error_and_agents(app, world: World):
    """Rules the center cannot plan are listed prominently on the dashboard."""
    async with app.state.engine.begin() as conn:
        await conn.execute(
            update(crontab)
            .where(crontab.c.id == world.ids["rule_a"])
            .values(error="timezone: unknown")
        )
    client = await _session_client(app, world, "viewer")
    page = await client.get("/")
    assert 'id="trouble"' in page.text and "timezone: unknown" in page.text
    assert re.search(r'id="agents-online">1<', page.text)
    await client.aclose()


async def test_password_change_ends_other_sessions(app, world: World):
    """Changing one's password on the account page keeps this session and ends the others."""
    other = await _session_client(app, world, "viewer")
    client = await _session_client(app, world, "viewer")
    token = await _csrf(client, "/account")
    form = {
        "csrf": token,
        "current_password": PASSWORD,
        "new_password": "a new password",
        "new_password2": "a new password",
    }
    answer = await client.post("/account/password", data=form)
    assert answer.status_code == 200 and "Password changed" in answer.text
    assert (await client.get("/")).status_code == 200
    assert (await other.get("/")).status_code == 303
    await client.aclose()
    await other.aclose()


async def test_logout_ends_the_session(app, world: World):
    """Log out deletes the session row; the cookie no longer opens pages."""
    client = await _session_client(app, world, "viewer")
    session_id = client.cookies["uc_session"]
    answer = await client.post("/logout", data={"csrf": await _csrf(client)})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    client.cookies.set("uc_session", session_id, domain="admin.test")
    assert (await client.get("/")).status_code == 303
    await client.aclose()


async def test_every_page_renders(app, world: World):
    """Each page answers 200 for a superadmin (no template error anywhere)."""
    client = await _session_client(app, world, "root")
    ids = world.ids
    paths = [
        "/",
        "/rules",
        "/rules/new",
        f"/rules/{ids['rule_a']}",
        f"/rules/{ids['rule_a']}/edit",
        "/runs",
        f"/runs/{ids['run_a']}",
        "/agents",
        f"/agents/{ids['agent_a']}",
        f"/agents/{ids['pending']}",
        "/groups",
        f"/groups/{world.alpha}",
        "/users",
        f"/users/{world.user_ids['viewer']}",
        "/audit",
        "/account",
    ]
    for path in paths:
        assert (await client.get(path)).status_code == 200, path
    await client.aclose()


async def test_live_output_streams_until_the_run_ends(app, world: World):
    """The run page's event stream sends output as chunks land, then `end` with the status."""
    engine = app.state.engine
    run_id = await add_run(engine, world.ids["rule_a"], world.ids["agent_a"], sched_us=1_000_000)
    async with engine.connect() as conn:
        runid = await conn.scalar(select(task_process.c.runid).where(task_process.c.id == run_id))
    await add_output(engine, runid, 0, b"first line\n")
    client = await _session_client(app, world, "viewer")
    cookie = client.cookies["uc_session"]
    await client.aclose()
    async with running_admin(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        http.cookies.set("uc_session", cookie)
        events: list[str] = []
        async with asyncio.timeout(20), http.stream("GET", f"/runs/{run_id}/stream") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                events.append(line)
                if line.startswith("data:") and "first line" in line:
                    await add_output(engine, runid, 11, "second ✓\n".encode())
                if line.startswith("data:") and "second" in line:
                    async with engine.begin() as conn:
                        await conn.execute(
                            update(task_process)
                            .where(task_process.c.id == run_id)
                            .values(status="success", code=0)
                        )
                if line.startswith("event: end"):
                    break
    text = "\n".join(events)
    assert "first line" in text and "second \\u2713" in text
    assert "id: 11" in text and events[-1] == "event: end"


async def test_the_dashboard_names_rules_whose_calendar_data_ends_soon(app: FastAPI, world: World):
    """cn-workdays' data ends on a known day: past it a `skip` rule stops firing. Within 60 days
    of that day the dashboard lists the rule with the warning its page shows."""
    engine = app.state.engine
    async with engine.begin() as conn:
        await conn.execute(
            update(crontab)
            .where(crontab.c.id == world.ids["rule_a"])
            .values(calendar="cn-workdays", calendar_fallback="skip")
        )
    last = builtin("cn-workdays").last  # type: ignore[union-attr]
    assert last is not None
    today = datetime.now(UTC).toordinal()
    async with asyncio.timeout(10), await _session_client(app, world, "admin") as client:
        text = (await client.get("/")).text
    listed = 'id="calendar-ends"' in text and "has no data after" in text
    assert listed is (last - today <= CALENDAR_WARN_DAYS)
    assert "beta job" not in text  # another group's rules stay out of sight
