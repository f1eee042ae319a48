"""Concurrency keys and run now with parameters in the admin: the API's checks (each refusal
names its field), the audit rows, and the pages that show keys, holders and queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from center.tables import audit_log, center_command
from tests.admin.seed import World, add_rule, add_run, now_us
from tests.admin.test_pages import _session_client


async def _key(api: httpx.AsyncClient, world: World, key: str = "db-heavy", limit: int = 2) -> Any:
    answer = await api.post(
        f"/api/v1/groups/{world.alpha}/keys",
        json={"key": key, "limit": limit, "description": "the database"},
        headers=world.auth("admin"),
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def _audit(app: Any, action: str) -> list[Any]:
    async with app.state.engine.connect() as conn:
        query = select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id)
        return list((await conn.execute(query)).mappings())


async def test_keys_are_made_edited_and_deleted_by_group_admins(
    api: httpx.AsyncClient, world: World, app: Any
) -> None:
    """Create, list, change the limit, delete: group admins only, each audited; a duplicate
    name is 409, a bad name or limit 422 naming the field."""
    key = await _key(api, world)
    assert (key["key"], key["limit"], key["gid"]) == ("db-heavy", 2, world.alpha)
    url = f"/api/v1/groups/{world.alpha}/keys"
    refused = await api.post(url, json={"key": "x"}, headers=world.auth("operator"))
    assert refused.status_code == 403
    again = await api.post(url, json={"key": "db-heavy"}, headers=world.auth("admin"))
    assert again.status_code == 409 and again.json()["error"]["field"] == "key"
    for body, field in (({"key": "a,b"}, "key"), ({"key": "ok", "limit": 0}, "limit")):
        bad = await api.post(url, json=body, headers=world.auth("admin"))
        assert bad.status_code == 422 and bad.json()["error"]["field"] == field, bad.text
    patched = await api.patch(f"{url}/{key['id']}", json={"limit": 3}, headers=world.auth("admin"))
    assert patched.status_code == 200 and patched.json()["limit"] == 3
    other = await api.get(f"/api/v1/groups/{world.alpha}/keys", headers=world.auth("beta_admin"))
    assert other.status_code in (403, 404)
    gone = await api.delete(f"{url}/{key['id']}", headers=world.auth("admin"))
    assert gone.status_code == 204
    actions = [r["action"] for r in await _audit(app, "key.create")]
    actions += [r["action"] for r in await _audit(app, "key.update")]
    actions += [r["action"] for r in await _audit(app, "key.delete")]
    assert actions == ["key.create", "key.update", "key.delete"]


async def test_a_rule_holds_only_keys_of_its_group(api: httpx.AsyncClient, world: World) -> None:
    """`concurrency_keys` must name keys of the rule's group (422 naming the field); a key
    held by a rule cannot be deleted (409)."""
    key = await _key(api, world)
    task_id = world.ids["rule_a"]
    headers = world.auth("admin")
    bad = await api.patch(
        f"/api/v1/rules/{task_id}", json={"concurrency_keys": "db-heavy,nope"}, headers=headers
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "concurrency_keys"
    assert "nope" in bad.json()["error"]["reason"]
    ok = await api.patch(
        f"/api/v1/rules/{task_id}", json={"concurrency_keys": " db-heavy "}, headers=headers
    )
    assert ok.status_code == 200 and ok.json()["concurrency_keys"] == "db-heavy"
    held = await api.delete(f"/api/v1/groups/{world.alpha}/keys/{key['id']}", headers=headers)
    assert held.status_code == 409 and str(task_id) in held.json()["error"]["reason"]


async def test_keys_list_their_holders_and_queue(
    api: httpx.AsyncClient, world: World, app: Any
) -> None:
    """Holders are the runs in flight of the rules holding the key (on any agent), the queue
    the ones past their time not yet sent; both show on the group page."""
    await _key(api, world, limit=1)
    engine = app.state.engine
    agent = world.ids["agent_a"]
    task_id = await add_rule(
        engine, world.alpha, [agent], name="heavy", concurrency_keys="db-heavy"
    )
    await add_run(engine, task_id, agent, status="running")
    await add_run(engine, task_id, agent, status="planned", sched_us=now_us() - 1_000_000)
    await add_run(engine, task_id, agent, status="success", sched_us=now_us() - 9_000_000)
    answer = await api.get(f"/api/v1/groups/{world.alpha}/keys", headers=world.auth("viewer"))
    assert answer.status_code == 200, answer.text
    (key,) = answer.json()
    assert [r["status"] for r in key["holders"]] == ["running"]
    assert [r["status"] for r in key["queue"]] == ["planned"]
    assert key["rules"] == [{"id": task_id, "name": "heavy"}]
    async with await _session_client(app, world, "viewer") as client:
        page = await client.get(f"/groups/{world.alpha}")
    assert page.status_code == 200
    assert (
        "db-heavy" in page.text and "1/1" in page.text and key["holders"][0]["runid"] in page.text
    )


async def _run(api: httpx.AsyncClient, world: World, task_id: int, body: dict[str, Any]) -> Any:
    return await api.post(f"/api/v1/rules/{task_id}/run", json=body, headers=world.auth("operator"))


@pytest.mark.parametrize(
    ("allow", "body", "field"),
    [
        (False, {"params": "--day 1"}, "params"),
        (False, {"env": {"MODE": "full"}}, "env"),
        (True, {"env": {"LD_PRELOAD": "/tmp/x.so"}}, "env"),
        (True, {"env": {"UNITEDCRON_RUNID": "x"}}, "env"),
        (True, {"env": {"1BAD": "x"}}, "env"),
        (True, {"params": "'unclosed"}, "params"),
        (True, {"run_at": "2020-01-01T00:00:00Z"}, "run_at"),
        (True, {"run_at": "2099-01-01T00:00:00Z"}, "run_at"),
        (True, {"run_at": "2030-01-01T00:00:00"}, "run_at"),
        (True, {"run_at": "tomorrow"}, "run_at"),
    ],
)
async def test_run_now_refuses_bad_extras_naming_the_field(
    api: httpx.AsyncClient, world: World, app: Any, allow: bool, body: dict[str, Any], field: str
) -> None:
    task_id = await add_rule(
        app.state.engine, world.alpha, [world.ids["agent_a"]], allow_params=int(allow)
    )
    answer = await _run(api, world, task_id, body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field


async def test_run_now_with_params_is_a_command_with_args_and_an_audit_row(
    api: httpx.AsyncClient, world: World, app: Any
) -> None:
    """Params, env and run_at reach the command row's args; the audit row records them; a
    plain run now still takes no body at all."""
    task_id = await add_rule(app.state.engine, world.alpha, [world.ids["agent_a"]], allow_params=1)
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    body = {"params": "--day '2026-05-01'", "env": {"MODE": "full"}, "run_at": at.isoformat()}
    answer = await _run(api, world, task_id, body)
    assert answer.status_code == 202, answer.text
    plain = await api.post(f"/api/v1/rules/{task_id}/run", headers=world.auth("operator"))
    assert plain.status_code == 202, plain.text
    async with app.state.engine.connect() as conn:
        rows = (await conn.execute(select(center_command).order_by(center_command.c.id))).mappings()
        args = [json.loads(r["args"]) for r in rows if r["task_id"] == task_id]
    assert args == [
        {
            "params": "--day '2026-05-01'",
            "env": {"MODE": "full"},
            "run_at_us": int(at.timestamp()) * 1_000_000,
        },
        {},
    ]
    (audit, _) = await _audit(app, "rule.run")
    after = json.loads(audit["after_json"])
    assert json.loads(after["args"])["params"] == "--day '2026-05-01'"


async def test_rule_page_runs_with_params_and_shows_field_errors(world: World, app: Any) -> None:
    """The rule page's form: params and env for a rule with allow_params; an error is shown
    on the page naming the field."""
    task_id = await add_rule(app.state.engine, world.alpha, [world.ids["agent_a"]], allow_params=1)
    async with await _session_client(app, world, "operator") as client:
        page = await client.get(f"/rules/{task_id}")
        assert 'name="params"' in page.text and 'name="run_at"' in page.text
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        form = {"csrf": csrf, "params": "a b", "env": '{"LD_AUDIT": "x"}', "run_at": ""}
        refused = await client.post(f"/rules/{task_id}/run", data=form)
        assert refused.status_code == 422 and "LD_AUDIT" in refused.text
        form["env"] = '{"MODE": "x"}'
        done = await client.post(f"/rules/{task_id}/run", data=form)
        assert done.status_code == 303
