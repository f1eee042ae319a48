"""Rule history over the API and the pages: versions, who and when, diffs, rollback, import."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from center.store.rulefiles import import_text
from center.tables import audit_log, crontab, crontab_version
from tests.admin.seed import World, add_agent
from tests.admin.test_pages import _csrf, _session_client

NEW_RULE = {
    "name": "nightly",
    "rule": "0 3 * * *",
    "execute": "/bin/echo one",
    "run_user": "nobody",
}


async def _create(api: httpx.AsyncClient, world: World, **values) -> int:
    body = NEW_RULE | {"gid": world.alpha, "agents": [world.ids["agent_a"]]} | values
    answer = await api.post("/api/v1/rules", json=body, headers=world.auth("admin"))
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


async def _versions(api: httpx.AsyncClient, world: World, task_id: int, user: str = "admin"):
    answer = await api.get(f"/api/v1/rules/{task_id}/versions", headers=world.auth(user))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_every_save_is_a_version_with_who_when_and_what(api: httpx.AsyncClient, world: World):
    """Create, edit, pause, resume and delete each add a version, newest first, naming the
    user and the token they used, with a summary; a save that changes nothing adds none."""
    task_id = await _create(api, world)
    admin, operator = world.auth("admin"), world.auth("operator")
    url = f"/api/v1/rules/{task_id}"
    assert (await api.patch(url, json={"execute": "/bin/echo two"}, headers=admin)).is_success
    assert (await api.patch(url, json={"execute": "/bin/echo two"}, headers=admin)).is_success
    assert (await api.patch(url, json={"status": 0}, headers=operator)).is_success
    assert (await api.patch(url, json={"status": 1}, headers=operator)).is_success
    assert (await api.delete(url, headers=admin)).status_code == 204
    rows = await _versions(api, world, task_id)
    assert [(r["version"], r["summary"]) for r in rows] == [
        (5, "deleted"),
        (4, "resumed"),
        (3, "paused"),
        (2, "changed execute"),
        (1, "created"),
    ]
    assert [r["username"] for r in rows] == ["admin", "operator", "operator", "admin", "admin"]
    assert rows[0]["via"] == f"api token {world.tokens['admin'][:12]}"
    assert rows[0]["user_id"] == world.user_ids["admin"]
    assert rows[4]["at_us"] <= rows[0]["at_us"]
    assert "content" not in rows[0]


async def test_a_version_holds_every_column_and_the_targets(api, world: World, app: FastAPI):
    """GET …/versions/{n} has the whole rule as it was: every crontab column and `agents`."""
    task_id = await _create(api, world, timeout_s=12.5, env={"A": "1"})
    answer = await api.get(f"/api/v1/rules/{task_id}/versions/1", headers=world.auth("viewer"))
    assert answer.status_code == 200
    content = answer.json()["content"]
    assert set(crontab.c.keys()) <= set(content)
    assert content["agents"] == [world.ids["agent_a"]]
    assert (content["timeout_s"], content["env"]) == (12.5, '{"A": "1"}')
    missing = await api.get(f"/api/v1/rules/{task_id}/versions/9", headers=world.auth("viewer"))
    assert missing.status_code == 404
    assert missing.json()["error"]["field"] == "version"


async def test_diff_shows_field_by_field(api: httpx.AsyncClient, world: World, app: FastAPI):
    """The diff of two versions lists each field that differs with its old and new value."""
    task_id = await _create(api, world)
    other = await add_agent(app.state.engine, "host-a2", world.alpha)
    change = {"rule": "0 4 * * *", "agents": [world.ids["agent_a"], other]}
    assert (
        await api.patch(f"/api/v1/rules/{task_id}", json=change, headers=world.auth("admin"))
    ).is_success
    answer = await api.get(
        f"/api/v1/rules/{task_id}/diff", params={"from": 1, "to": 2}, headers=world.auth("viewer")
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["changes"] == [
        {
            "field": "agents",
            "old": [world.ids["agent_a"]],
            "new": sorted([world.ids["agent_a"], other]),
        },
        {"field": "rule", "old": "0 3 * * *", "new": "0 4 * * *"},
    ]
    back = await api.get(
        f"/api/v1/rules/{task_id}/diff", params={"from": 2, "to": 1}, headers=world.auth("viewer")
    )
    assert [c["old"] for c in back.json()["changes"]][1] == "0 4 * * *"
    last = await api.get(f"/api/v1/rules/{task_id}/diff", headers=world.auth("viewer"))
    assert (last.json()["from"], last.json()["to"]) == (1, 2)  # no numbers: the last change
    assert last.json()["changes"] == answer.json()["changes"]
    bad = await api.get(
        f"/api/v1/rules/{task_id}/diff", params={"from": "x"}, headers=world.auth("viewer")
    )
    assert bad.status_code == 422


async def test_rollback_writes_the_old_version_as_a_new_one(api, world: World, app: FastAPI):
    """Rollback needs the admin role, writes version n's fields back, is itself a version
    "rollback to vN" and is audited."""
    task_id = await _create(api, world)
    url = f"/api/v1/rules/{task_id}"
    await api.patch(url, json={"execute": "/bin/false", "retries": 3}, headers=world.auth("admin"))
    refused = await api.post(f"{url}/rollback", json={"version": 1}, headers=world.auth("operator"))
    assert refused.status_code == 403
    answer = await api.post(f"{url}/rollback", json={"version": 1}, headers=world.auth("admin"))
    assert answer.status_code == 200, answer.text
    assert (answer.json()["version"], answer.json()["summary"]) == (3, "rollback to v1")
    rule = (await api.get(url, headers=world.auth("admin"))).json()
    assert (rule["execute"], rule["retries"]) == ("/bin/echo one", 0)
    diff = await api.get(f"{url}/diff", params={"from": 1, "to": 3}, headers=world.auth("admin"))
    assert diff.json()["changes"] == []
    async with app.state.engine.connect() as conn:
        actions = (
            await conn.scalars(
                select(audit_log.c.action).where(audit_log.c.object_id == str(task_id))
            )
        ).all()
    assert "rule.rollback" in actions
    unknown = await api.post(f"{url}/rollback", json={"version": 42}, headers=world.auth("admin"))
    assert unknown.status_code == 404


async def test_rollback_to_a_version_no_longer_valid_names_the_field(api, world: World, app):
    """A version whose agent has been deleted since cannot be written back: 422 on `agents`,
    and nothing changes (no new version)."""
    engine = app.state.engine
    gone = await add_agent(engine, "host-gone", world.alpha)
    task_id = await _create(api, world, agents=[gone])
    url = f"/api/v1/rules/{task_id}"
    await api.patch(url, json={"agents": [world.ids["agent_a"]]}, headers=world.auth("admin"))
    assert (
        await api.delete(f"/api/v1/agents/{gone}", headers=world.auth("admin"))
    ).status_code == 204
    answer = await api.post(f"{url}/rollback", json={"version": 1}, headers=world.auth("admin"))
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "agents"
    assert len(await _versions(api, world, task_id)) == 2


async def test_a_deleted_rule_keeps_its_history_and_a_rollback_restores_it(api, world: World):
    """History stays readable after a delete; rolling back to a live version restores the rule."""
    task_id = await _create(api, world)
    url = f"/api/v1/rules/{task_id}"
    await api.delete(url, headers=world.auth("admin"))
    assert (await api.get(url, headers=world.auth("admin"))).status_code == 404
    assert len(await _versions(api, world, task_id)) == 2
    answer = await api.post(f"{url}/rollback", json={"version": 2}, headers=world.auth("admin"))
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "status"
    answer = await api.post(f"{url}/rollback", json={"version": 1}, headers=world.auth("admin"))
    assert answer.status_code == 200
    assert (await api.get(url, headers=world.auth("admin"))).json()["status"] == 1


async def test_history_is_scoped_like_the_rule(api: httpx.AsyncClient, world: World):
    """Another group's user sees no history (404), as for the rule itself."""
    task_id = await _create(api, world)
    for path in ("versions", "versions/1", "diff?from=1&to=1"):
        answer = await api.get(f"/api/v1/rules/{task_id}/{path}", headers=world.auth("beta_admin"))
        assert answer.status_code == 404, path
    answer = await api.post(
        f"/api/v1/rules/{task_id}/rollback", json={"version": 1}, headers=world.auth("beta_admin")
    )
    assert answer.status_code == 404


async def test_a_deleted_agent_leaves_a_version_on_its_rules(api, world: World):
    """Deleting an agent takes it out of its rules: each gets a version saying so."""
    task_id = await _create(api, world)
    await api.delete(f"/api/v1/agents/{world.ids['agent_a']}", headers=world.auth("admin"))
    rows = await _versions(api, world, task_id)
    assert rows[0]["summary"] == f"agent {world.ids['agent_a']} left its targets (deleted)"


async def test_a_rule_written_without_history_starts_it_at_its_next_save(api, world: World):
    """A rule inserted by raw SQL (the seed) has no version; its next save is v1, saying so."""
    url = f"/api/v1/rules/{world.ids['rule_a']}"
    assert await _versions(api, world, world.ids["rule_a"]) == []
    await api.patch(url, json={"status": 0}, headers=world.auth("operator"))
    rows = await _versions(api, world, world.ids["rule_a"])
    assert [r["version"] for r in rows] == [1]
    assert rows[0]["summary"].startswith("first version recorded")


async def test_rules_files_import_records_versions(api, world: World, db_url: str, app):
    """Rules as files: a rule added and then changed by an import gets versions by "import"."""
    text = """
rules:
  - group: alpha
    name: from-file
    rule: "0 5 * * *"
    execute: /bin/echo file
    run_user: nobody
    agents: [host-a]
"""
    await import_text(db_url, text, "rules.yaml", write=True, prune=False)
    await import_text(
        db_url, text.replace("echo file", "echo file2"), "rules.yaml", write=True, prune=False
    )
    async with app.state.engine.connect() as conn:
        task_id = await conn.scalar(select(crontab.c.id).where(crontab.c.name == "from-file"))
        count = await conn.scalar(select(func.count()).select_from(crontab_version))
    rows = await _versions(api, world, task_id)
    assert [(r["version"], r["username"], r["summary"]) for r in rows] == [
        (2, "import", "changed execute"),
        (1, "import", "created"),
    ]
    assert count == 2


async def test_history_pages(app: FastAPI, world: World, api: httpx.AsyncClient):
    """The history page lists the versions; the diff page shows old → new per field; the
    rollback form writes a version back, and a bad one shows the field on the page."""
    task_id = await _create(api, world)
    await api.patch(
        f"/api/v1/rules/{task_id}",
        json={"execute": "/bin/echo <b>two</b>"},
        headers=world.auth("admin"),
    )
    client = await _session_client(app, world, "admin")
    page = await client.get(f"/rules/{task_id}/history")
    assert page.status_code == 200
    assert (
        'id="v2"' in page.text and "changed execute" in page.text and "Roll back to v1" in page.text
    )
    diff = await client.get(f"/rules/{task_id}/diff?from=1&to=2")
    assert diff.status_code == 200
    assert 'data-field="execute"' in diff.text
    assert "/bin/echo &lt;b&gt;two&lt;/b&gt;" in diff.text and "/bin/echo one" in diff.text
    token = await _csrf(client, f"/rules/{task_id}/history")
    answer = await client.post(f"/rules/{task_id}/rollback", data={"csrf": token, "version": "1"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/rules/{task_id}/history?rolled=3"
    page = await client.get(answer.headers["location"])
    assert "rollback to v1" in page.text and 'id="rolled-back"' in page.text
    bad = await client.post(f"/rules/{task_id}/rollback", data={"csrf": token, "version": "x"})
    assert bad.status_code == 422 and "version" in bad.text
    viewer = await _session_client(app, world, "viewer")
    page = await viewer.get(f"/rules/{task_id}/history")
    assert page.status_code == 200 and "Roll back" not in page.text
    assert f'href="/rules/{task_id}/history"' in (await viewer.get(f"/rules/{task_id}")).text
    await client.aclose()
    await viewer.aclose()
