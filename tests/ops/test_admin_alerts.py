"""Alert channels in the admin: API and pages, group permissions, audit, a test send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from admin.app import create_app
from center.alert_loop import AlertLoop
from center.tables import audit_log
from tests.admin.conftest import admin_config
from tests.admin.seed import World
from tests.admin.test_pages import _csrf, _session_client
from tests.integration.cluster import center_config
from tests.ops.receivers import LOCAL_TARGETS, webhook_receiver

URL = "/api/v1/alert-channels"


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[FastAPI]:
    """The admin, allowing alert targets on 127.0.0.1, where the test receiver listens."""
    application = create_app(admin_config(db_url, **LOCAL_TARGETS))
    try:
        yield application
    finally:
        async with asyncio.timeout(10):
            await application.state.engine.dispose()


def hook(world: World, **values: object) -> dict[str, object]:
    return {"gid": world.alpha, "name": "pager", "target": "https://hooks.example/x"} | values


async def test_group_admins_manage_channels_and_members_see_them(
    api: httpx.AsyncClient, world: World
):
    """An admin of the group creates a channel; viewers see it without the secret; others 404."""
    made = await api.post(URL, json=hook(world), headers=world.auth("admin"))
    assert made.status_code == 201, made.text
    channel = made.json()
    assert channel["kind"] == "webhook" and len(channel["secret"]) >= 32
    assert channel["events"] == [
        "run_failed",
        "run_timeout",
        "crash_looping",
        "agent_offline",
        "did_not_start",
        "calendar_ending",
    ]
    seen = await api.get(f"{URL}/{channel['id']}", headers=world.auth("viewer"))
    assert seen.status_code == 200 and "secret" not in seen.json() and seen.json()["has_secret"]
    for user, code in (("operator", 403), ("beta_admin", 404)):
        answer = await api.patch(
            f"{URL}/{channel['id']}", json={"throttle_s": 60}, headers=world.auth(user)
        )
        assert answer.status_code == code, (user, answer.text)
    listed = await api.get(URL, headers=world.auth("beta_admin"))
    assert listed.json() == []
    denied = await api.post(URL, json=hook(world, name="x"), headers=world.auth("operator"))
    assert denied.status_code == 403


async def test_bad_fields_are_named(api: httpx.AsyncClient, world: World):
    """A bad URL, an unknown event, a bad address or a taken name answer with the field."""
    auth = world.auth("admin")
    assert (await api.post(URL, json=hook(world), headers=auth)).status_code == 201
    for body, code, field in (
        (hook(world, name="a", target="ftp://x"), 422, "target"),
        (hook(world, name="b", events=["run_failed", "coffee"]), 422, "events"),
        (hook(world, name="c", kind="email", target="ops@example.com, nobody"), 422, "target"),
        (hook(world, name="d", kind="pigeon"), 422, "kind"),
        (hook(world, name="e", throttle_s=-1), 422, "throttle_s"),
        (hook(world), 409, "name"),
    ):
        answer = await api.post(URL, json=body, headers=auth)
        assert answer.status_code == code, answer.text
        assert answer.json()["error"]["field"] == field


async def test_changes_are_audited_without_the_secret(
    api: httpx.AsyncClient, world: World, app: FastAPI
):
    """Create, update and delete are in the audit log; the secret is masked there."""
    auth = world.auth("admin")
    made = (await api.post(URL, json=hook(world, secret="s3cret-value"), headers=auth)).json()
    patched = await api.patch(
        f"{URL}/{made['id']}", json={"events": ["did_not_start"], "grace_s": 300}, headers=auth
    )
    assert patched.json()["events"] == ["did_not_start"] and patched.json()["grace_s"] == 300
    assert (await api.delete(f"{URL}/{made['id']}", headers=auth)).status_code == 204
    async with app.state.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(audit_log.c.action, audit_log.c.after_json, audit_log.c.before_json)
            )
        ).all()
    assert [r.action for r in rows if r.action.startswith("alert.")] == [
        "alert.create",
        "alert.update",
        "alert.delete",
    ]
    assert all("s3cret" not in (r.after_json + r.before_json) for r in rows)


async def test_a_test_send_is_queued_and_delivered_signed(
    api: httpx.AsyncClient, world: World, app: FastAPI, db_url: str
):
    """A test send queues a notification that the leader's loop delivers, signed."""
    async with webhook_receiver() as receiver:
        body = hook(world, target=receiver.url, secret="k" * 20)
        made = (await api.post(URL, json=body, headers=world.auth("admin"))).json()
        queued = await api.post(f"{URL}/{made['id']}/test", headers=world.auth("admin"))
        assert queued.status_code == 202 and queued.json()["status"] == "pending"
        sent = await AlertLoop(
            app.state.engine, center_config(db_url, **LOCAL_TARGETS)
        ).deliver_due(2**62)
        assert sent == 1
        got = await receiver.next()
    assert got.signed_with("k" * 20) and got.json["state"] == "test"
    detail = await api.get(f"{URL}/{made['id']}", headers=world.auth("viewer"))
    assert detail.json()["notifications"][0]["status"] == "sent"


async def test_pages_create_edit_and_test_a_channel(app: FastAPI, world: World):
    """Through the pages, a group admin creates a channel, edits it and queues a test."""
    client = await _session_client(app, world, "admin")
    async with client:
        csrf = await _csrf(client, "/alerts")
        form = {
            "csrf": csrf,
            "gid": str(world.alpha),
            "name": "mail ops",
            "kind": "email",
            "target": "ops@example.com",
            "events": ["run_failed", "agent_offline"],
            "throttle_s": "600",
            "grace_s": "60",
            "status": "1",
        }
        created = await client.post("/alerts", data=form)
        assert created.status_code == 303, created.text
        page = await client.get(created.headers["location"])
        assert page.status_code == 200 and "mail ops" in page.text
        cid = created.headers["location"].rsplit("/", 1)[1]
        edited = await client.post(f"/alerts/{cid}", data=form | {"throttle_s": "-5"})
        assert edited.status_code == 422 and "throttle_s" in edited.text
        tested = await client.post(f"/alerts/{cid}/test", data={"csrf": csrf})
        assert tested.status_code == 303
        page = await client.get(f"/alerts/{cid}")
        assert "pending" in page.text and "test" in page.text
        stale = await client.post(f"/alerts/{cid}/delete", data={"csrf": "nope"})
        assert stale.status_code == 403
    viewer = await _session_client(app, world, "viewer")
    async with viewer:
        listing = await viewer.get("/alerts")
        assert "mail ops" in listing.text and 'id="new-channel"' not in listing.text
