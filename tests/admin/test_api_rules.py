"""Rules over the API: fields stored, errors that name the field, update_time, commands."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from center.tables import center_command, crontab, crontab_agent, task_process
from tests.admin.seed import World, add_agent, add_rule, now_us

FULL_RULE: dict[str, Any] = {
    "name": "backup",
    "rule": "0 30 3 * * *",
    "execute": "/usr/bin/backup --all",
    "run_user": "backup",
    "process_num": 2,
    "is_daemon": False,
    "status": 0,
    "timezone": "Europe/Berlin",
    "shell": True,
    "env": {"LANG": "C.UTF-8"},
    "cwd": "/var/backups",
    "timeout_s": 600.5,
    "kill_grace_s": 3,
    "retries": 2,
    "retry_backoff_s": 30,
    "overlap": "queue",
    "output_max_bytes": 4096,
    "routing": "round_robin",
    "failover": False,
    "selector": "role=db",
    "shard_total": 0,
    "misfire": "once",
    "misfire_window_s": 600,
    "depends_when": "always",
    "description": "nightly",
}


def _new(world: World, **changes: Any) -> dict[str, Any]:
    return {"gid": world.alpha, "name": "r", "rule": "@hourly", "execute": "/bin/true"} | changes


async def test_create_stores_every_field(api: httpx.AsyncClient, world: World, app):
    """A rule posted with every field comes back (and is stored) as given, with its agents."""
    body = FULL_RULE | {"gid": world.alpha, "agents": [world.ids["agent_a"]]}
    before = now_us()
    answer = await api.post("/api/v1/rules", json=body, headers=world.auth("admin"))
    assert answer.status_code == 201, answer.text
    row = answer.json()
    for name, value in FULL_RULE.items():
        expected = {"is_daemon": 0, "shell": 1, "failover": 0}.get(name, value)
        if name == "env":
            expected = '{"LANG": "C.UTF-8"}'
        assert row[name] == expected, name
    assert row["agents"] == [world.ids["agent_a"]] and row["error"] == ""
    assert row["update_time"] >= before and row["create_time"] == row["update_time"]
    again = await api.get(f"/api/v1/rules/{row['id']}", headers=world.auth("viewer"))
    assert {k: again.json()[k] for k in row} == row


@pytest.mark.parametrize(
    "case",
    [
        ({"rule": "61 * * * *"}, "rule", "59"),
        ({"rule": "*/5 * * *"}, "rule", "fields"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Mars/Olympus"),
        ({"execute": "   "}, "execute", "empty"),
        ({"execute": "echo 'unclosed"}, "execute", "split"),
        ({"env": "{not json"}, "env", "JSON"),
        ({"env": "[1, 2]"}, "env", "object"),
        ({"env": {"A": 1}}, "env", "string"),
        ({"env": {"UNITEDCRON_SECRET": "x"}}, "env", "reserved"),
        ({"process_num": 0}, "process_num", "range"),
        ({"process_num": "many"}, "process_num", "integer"),
        ({"process_num": None}, "process_num", "null"),
        ({"timeout_s": -1}, "timeout_s", "range"),
        ({"overlap": "sometimes"}, "overlap", "skip"),
        ({"run_user": "not a user!"}, "run_user", "Unix"),
        ({"status": -1}, "status", "paused"),
        ({"name": " "}, "name", "empty"),
        ({"name": "x" * 129}, "name", "128"),
        ({"agents": [999999]}, "agents", "999999"),
        ({"agents": "1,2"}, "agents", "list"),
        ({"gid": None}, "gid", "null"),
        ({"gid": 999999}, "gid", "no such group"),
        ({"depends_on": 999999}, "depends_on", "999999"),
        ({"colour": "blue"}, "colour", "xtra"),
    ],
)
async def test_bad_fields_are_named(
    api: httpx.AsyncClient, world: World, app, case: tuple[dict, str, str]
):
    """A bad value answers 422 naming the field and the reason; no row is written."""
    changes, field, words = case
    async with app.state.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(crontab))
    answer = await api.post(
        "/api/v1/rules", json=_new(world, **changes), headers=world.auth("admin")
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and words in error["reason"], error
    async with app.state.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(crontab)) == count


async def test_agent_of_another_group_is_refused(api: httpx.AsyncClient, world: World):
    """A rule may only target agents of its own group, even for a superadmin."""
    body = _new(world, agents=[world.ids["agent_b"]])
    answer = await api.post("/api/v1/rules", json=body, headers=world.auth("root"))
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "agents"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"", b"null"])
async def test_malformed_bodies_are_400(api: httpx.AsyncClient, world: World, body: bytes):
    """A body that is not a JSON object answers 400 with a JSON error, and changes nothing."""
    headers = world.auth("admin") | {"Content-Type": "application/json"}
    answer = await api.post("/api/v1/rules", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] is None and answer.json()["error"]["reason"]


async def test_unknown_path_and_bad_ids(api: httpx.AsyncClient, world: World):
    """Unknown paths and ids that are not numbers are 404; a bad query value is 422 naming it."""
    h = world.auth("root")
    assert (await api.get("/api/v1/rules/abc", headers=h)).status_code == 404
    assert (await api.get("/api/v1/nothing", headers=h)).status_code == 404
    bad = await api.get("/api/v1/runs?limit=abc", headers=h)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "limit"


async def test_edit_moves_update_time_and_keeps_the_rest(api: httpx.AsyncClient, world: World, app):
    """A PATCH changes the fields sent, checks the whole rule again, and bumps update_time."""
    task_id = world.ids["rule_a"]
    engine = app.state.engine
    async with engine.begin() as conn:
        await conn.execute(update(crontab).where(crontab.c.id == task_id).values(update_time=1))
    second = await add_agent(engine, "host-a2", world.alpha)
    body = {"rule": "*/7 * * * *", "agents": [second, world.ids["agent_a"]]}
    answer = await api.patch(f"/api/v1/rules/{task_id}", json=body, headers=world.auth("admin"))
    assert answer.status_code == 200, answer.text
    row = answer.json()
    assert row["rule"] == "*/7 * * * *" and row["execute"] == "/bin/echo hi"
    assert row["agents"] == sorted([second, world.ids["agent_a"]]) and row["update_time"] > 1
    bad = await api.patch(
        f"/api/v1/rules/{task_id}", json={"rule": "nope"}, headers=world.auth("admin")
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "rule"
    async with engine.connect() as conn:
        stored = (
            (await conn.execute(select(crontab).where(crontab.c.id == task_id))).mappings().one()
        )
        targets = (
            await conn.scalars(
                select(crontab_agent.c.aid).where(crontab_agent.c.task_id == task_id)
            )
        ).all()
    assert stored["rule"] == "*/7 * * * *" and sorted(targets) == row["agents"]


async def test_pause_enable_delete_move_update_time(api: httpx.AsyncClient, world: World, app):
    """Status changes (pause, enable, delete = -1) each set update_time for the center to see."""
    task_id = world.ids["rule_a"]
    seen = []
    for action in ("pause", "enable", "delete"):
        if action == "delete":
            answer = await api.delete(f"/api/v1/rules/{task_id}", headers=world.auth("admin"))
            assert answer.status_code == 204
        else:
            status = 0 if action == "pause" else 1
            answer = await api.patch(
                f"/api/v1/rules/{task_id}", json={"status": status}, headers=world.auth("operator")
            )
            assert answer.status_code == 200 and answer.json()["status"] == status
        async with app.state.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(crontab.c.status, crontab.c.update_time).where(crontab.c.id == task_id)
                )
            ).one()
        seen.append(row)
    assert [s for s, _ in seen] == [0, 1, -1]
    times = [t for _, t in seen]
    assert times == sorted(times) and len(set(times)) == 3


async def test_run_now_and_kill_write_commands(api: httpx.AsyncClient, world: World, app):
    """Run now, kill a rule, kill a run: one pending center_command row each, with who and when."""
    h = world.auth("operator")
    before = now_us()
    run = await api.post(f"/api/v1/rules/{world.ids['rule_a']}/run", headers=h)
    kill_rule = await api.post(f"/api/v1/rules/{world.ids['rule_a']}/kill", headers=h)
    kill = await api.post(f"/api/v1/runs/{world.ids['run_a']}/kill", headers=h)
    assert [r.status_code for r in (run, kill_rule, kill)] == [202, 202, 202]
    async with app.state.engine.connect() as conn:
        rows = (
            (await conn.execute(select(center_command).order_by(center_command.c.id)))
            .mappings()
            .all()
        )
    runid = f"{world.ids['rule_a']}-"
    assert [(r["kind"], r["task_id"], r["status"]) for r in rows] == [
        ("run", world.ids["rule_a"], "pending"),
        ("kill_rule", world.ids["rule_a"], "pending"),
        ("kill", world.ids["rule_a"], "pending"),
    ]
    assert rows[2]["runid"].startswith(runid) and rows[2]["aid"] == world.ids["agent_a"]
    assert all(
        r["user_id"] == world.user_ids["operator"] and r["created_us"] >= before for r in rows
    )


async def test_command_shows_what_the_center_did(api: httpx.AsyncClient, world: World, app):
    """When the leader marks a command done with a result, GET /commands/{id} shows it."""
    answer = await api.post(
        f"/api/v1/rules/{world.ids['rule_a']}/run", headers=world.auth("operator")
    )
    command_id = answer.json()["id"]
    async with app.state.engine.begin() as conn:
        await conn.execute(
            update(center_command)
            .where(center_command.c.id == command_id)
            .values(status="done", result="started 1 run(s)", done_us=now_us())
        )
    shown = await api.get(f"/api/v1/commands/{command_id}", headers=world.auth("viewer"))
    assert shown.json()["status"] == "done" and shown.json()["result"] == "started 1 run(s)"


async def test_refusals_are_conflicts(api: httpx.AsyncClient, world: World, app):
    """Run now of a daemon rule and kill of a finished run are 409 and write no command."""
    daemon = await add_rule(app.state.engine, world.alpha, [], name="d", is_daemon=1, rule="")
    h = world.auth("operator")
    assert (await api.post(f"/api/v1/rules/{daemon}/run", headers=h)).status_code == 409
    async with app.state.engine.begin() as conn:
        await conn.execute(update(task_process).values(status="success"))
    answer = await api.post(f"/api/v1/runs/{world.ids['run_a']}/kill", headers=h)
    assert answer.status_code == 409 and "over" in answer.json()["error"]["reason"]
    async with app.state.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(center_command)) == 0


async def test_preview(api: httpx.AsyncClient, world: World):
    """The preview lists the next 10 fires as wall-clock times of the rule's time zone."""
    answer = await api.get(
        "/api/v1/rules/preview",
        params={"rule": "0 30 3 * * *", "timezone": "Asia/Kolkata"},
        headers=world.auth("viewer"),
    )
    fires = answer.json()["fires"]
    assert len(fires) == 10 and all(f.endswith("03:30:00 IST (+0530)") for f in fires)
    bad = await api.get(
        "/api/v1/rules/preview",
        params={"rule": "@hourly", "timezone": "Nowhere"},
        headers=world.auth("viewer"),
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "timezone"


async def test_group_delete_refused_while_in_use(api: httpx.AsyncClient, world: World, app):
    """A group with rules or agents is not deleted (409); emptied, it goes with its roles."""
    h = world.auth("root")
    assert (await api.delete(f"/api/v1/groups/{world.beta}", headers=h)).status_code == 409
    assert (await api.delete(f"/api/v1/rules/{world.ids['rule_b']}", headers=h)).status_code == 204
    answer = await api.delete(f"/api/v1/groups/{world.beta}", headers=h)
    assert answer.status_code == 409 and "1 agents" in answer.json()["error"]["reason"]
    assert (
        await api.delete(f"/api/v1/agents/{world.ids['agent_b']}", headers=h)
    ).status_code == 204
    assert (await api.delete(f"/api/v1/groups/{world.beta}", headers=h)).status_code == 204
    grants = await api.get(f"/api/v1/grants?gid={world.beta}", headers=h)
    assert grants.json() == []


async def test_deleted_agent_leaves_its_rules(api: httpx.AsyncClient, world: World, app):
    """Deleting an agent takes it out of every rule and bumps those rules' update_time."""
    engine = app.state.engine
    async with engine.begin() as conn:
        await conn.execute(update(crontab).values(update_time=1))
    answer = await api.delete(f"/api/v1/agents/{world.ids['agent_a']}", headers=world.auth("admin"))
    assert answer.status_code == 204
    rule = (
        await api.get(f"/api/v1/rules/{world.ids['rule_a']}", headers=world.auth("admin"))
    ).json()
    assert rule["agents"] == [] and rule["update_time"] > 1


async def test_approve_pending_agent(api: httpx.AsyncClient, world: World, app):
    """Approving sets status 1 and the group; the agent then lists like the group's others."""
    h = world.auth("admin")
    pending = (await api.get("/api/v1/agents/pending", headers=h)).json()
    assert [a["name"] for a in pending] == ["host-new"]
    answer = await api.post(
        f"/api/v1/agents/{world.ids['pending']}/approve", json={"gid": world.alpha}, headers=h
    )
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["gid"]) == (1, world.alpha)
    assert (await api.get("/api/v1/agents/pending", headers=h)).json() == []
    names = {
        a["name"] for a in (await api.get("/api/v1/agents", headers=world.auth("viewer"))).json()
    }
    assert names == {"host-a", "host-new"}


async def test_labels_must_be_an_object_of_text(api: httpx.AsyncClient, world: World):
    """Labels are a JSON object of text values; anything else is 422 naming `labels`."""
    url = f"/api/v1/agents/{world.ids['agent_a']}"
    bad = await api.patch(url, json={"labels": {"a": 1}}, headers=world.auth("admin"))
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "labels"
    good = await api.patch(url, json={"labels": {"zone": "eu"}}, headers=world.auth("admin"))
    assert good.json()["labels"] == {"zone": "eu"}


async def test_changes_are_audited_with_before_and_after(api: httpx.AsyncClient, world: World):
    """An edit leaves an audit row: who, from where, the action, and the rule before and after."""
    task_id = world.ids["rule_a"]
    body = {"execute": "/bin/date"}
    answer = await api.patch(f"/api/v1/rules/{task_id}", json=body, headers=world.auth("admin"))
    assert answer.status_code == 200
    query = {"object_type": "rule", "object_id": str(task_id)}
    [entry] = (await api.get("/api/v1/audit", params=query, headers=world.auth("root"))).json()
    assert (entry["username"], entry["client"], entry["action"]) == (
        "admin",
        "10.0.0.7",
        "rule.update",
    )
    assert entry["before"]["execute"] == "/bin/echo hi" and entry["after"]["execute"] == "/bin/date"
    assert entry["gid"] == world.alpha and entry["at_us"] > 0
