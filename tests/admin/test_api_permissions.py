"""Every permission boundary of the API by direct id, for each role in and out of the group."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.admin.seed import World

# Users: viewer, operator and admin of group alpha, an operator and an admin of group beta, a
# user without roles, and a superadmin. Objects of a group one has no role in answer 404 (as if
# they did not exist); a role too low answers 403. Each table runs in order on one seeded world.

Case = tuple[str, str, str, Any, int]  # user, method, path, JSON body, expected status
ROLES_BELOW = ("viewer", "operator", "beta_operator", "beta_admin", "nobody")


def _fill(body: Any, ids: dict[str, int]) -> Any:
    """Put ids in place of "{name}" values of a JSON body."""
    if isinstance(body, dict):
        return {k: _fill(v, ids) for k, v in body.items()}
    if isinstance(body, str) and body.startswith("{") and body.endswith("}"):
        return ids[body[1:-1]]
    return body


async def _check(api: httpx.AsyncClient, w: World, cases: list[Case]) -> None:
    ids = {"alpha": w.alpha, "beta": w.beta, **w.ids}
    failures = []
    for user, method, path, body, expected in cases:
        url = "/api/v1" + path.format(**ids)
        kwargs = {"json": _fill(body, ids)} if body is not None else {}
        response = await api.request(method, url, headers=w.auth(user), **kwargs)
        if response.status_code != expected:
            failures.append(f"{user} {method} {url}: {response.status_code} {response.text[:200]}")
        elif expected >= 400:
            error = response.json()["error"]
            assert error["reason"], f"{user} {method} {url}: an error without a reason"
    assert not failures, "\n".join(failures)


async def test_groups(api: httpx.AsyncClient, world: World):
    """Groups: members read theirs, group admins rename, only superadmins create and delete."""
    await _check(
        api,
        world,
        [
            *[(u, "GET", "/groups/{alpha}", None, 200) for u in ("viewer", "operator", "admin")],
            ("root", "GET", "/groups/{alpha}", None, 200),
            ("beta_operator", "GET", "/groups/{alpha}", None, 404),
            ("nobody", "GET", "/groups/{alpha}", None, 404),
            ("viewer", "PATCH", "/groups/{alpha}", {"description": "x"}, 403),
            ("operator", "PATCH", "/groups/{alpha}", {"description": "x"}, 403),
            ("beta_admin", "PATCH", "/groups/{alpha}", {"description": "x"}, 404),
            ("admin", "PATCH", "/groups/{alpha}", {"description": "ours"}, 200),
            ("admin", "POST", "/groups", {"name": "gamma"}, 403),
            ("viewer", "POST", "/groups", {"name": "gamma"}, 403),
            ("admin", "DELETE", "/groups/{alpha}", None, 403),
            ("beta_admin", "DELETE", "/groups/{alpha}", None, 404),
            ("root", "DELETE", "/groups/{alpha}", None, 409),  # it still has rules and agents
            ("root", "POST", "/groups", {"name": "gamma"}, 201),
            ("root", "POST", "/groups", {"name": "gamma"}, 409),
            ("root", "GET", "/groups/999999", None, 404),
        ],
    )


async def test_agents(api: httpx.AsyncClient, world: World):
    """Agents: members read; only the group's admins change them; pending ones go to admins."""
    labels = {"labels": {"rack": "r1"}}
    await _check(
        api,
        world,
        [
            *[(u, "GET", "/agents/{agent_a}", None, 200) for u in ("viewer", "operator", "admin")],
            ("beta_operator", "GET", "/agents/{agent_a}", None, 404),
            ("beta_admin", "GET", "/agents/{agent_a}", None, 404),
            ("nobody", "GET", "/agents/{agent_a}", None, 404),
            ("viewer", "PATCH", "/agents/{agent_a}", labels, 403),
            ("operator", "PATCH", "/agents/{agent_a}", labels, 403),
            ("beta_admin", "PATCH", "/agents/{agent_a}", labels, 404),
            ("admin", "PATCH", "/agents/{agent_a}", labels, 200),
            ("admin", "PATCH", "/agents/{agent_a}", {"status": 0}, 200),
            ("admin", "PATCH", "/agents/{agent_a}", {"gid": "{beta}"}, 422),
            ("operator", "DELETE", "/agents/{agent_a}", None, 403),
            ("beta_admin", "DELETE", "/agents/{agent_a}", None, 404),
            # Pending agents: seen by admins of any group, approved into a group one administers.
            ("operator", "GET", "/agents/{pending}", None, 404),
            ("viewer", "POST", "/agents/{pending}/approve", {"gid": "{alpha}"}, 404),
            ("beta_admin", "GET", "/agents/{pending}", None, 200),
            ("beta_admin", "POST", "/agents/{pending}/approve", {"gid": "{alpha}"}, 422),
            ("admin", "POST", "/agents/{pending}/approve", {"gid": "{alpha}"}, 200),
            ("admin", "POST", "/agents/{pending}/approve", {"gid": "{alpha}"}, 409),
            ("root", "GET", "/agents/999999", None, 404),
        ],
    )


async def test_rules(api: httpx.AsyncClient, world: World):
    """Rules: viewers read; operators pause, run now and kill; admins edit; others see nothing."""
    new_rule = {"gid": "{alpha}", "name": "n", "rule": "@hourly", "execute": "/bin/true"}
    await _check(
        api,
        world,
        [
            *[(u, "GET", "/rules/{rule_a}", None, 200) for u in ("viewer", "operator", "admin")],
            ("root", "GET", "/rules/{rule_a}", None, 200),
            ("beta_operator", "GET", "/rules/{rule_a}", None, 404),
            ("nobody", "GET", "/rules/{rule_a}", None, 404),
            ("viewer", "PATCH", "/rules/{rule_a}", {"status": 0}, 403),
            ("beta_operator", "PATCH", "/rules/{rule_a}", {"status": 0}, 404),
            ("operator", "PATCH", "/rules/{rule_a}", {"status": 0}, 200),
            ("operator", "PATCH", "/rules/{rule_a}", {"status": 1}, 200),
            ("operator", "PATCH", "/rules/{rule_a}", {"execute": "/bin/true"}, 403),
            ("operator", "PATCH", "/rules/{rule_a}", {"status": 1, "name": "x"}, 403),
            ("beta_admin", "PATCH", "/rules/{rule_a}", {"execute": "/bin/true"}, 404),
            ("admin", "PATCH", "/rules/{rule_a}", {"execute": "/bin/true"}, 200),
            ("admin", "PATCH", "/rules/{rule_a}", {"gid": "{beta}"}, 422),
            ("viewer", "POST", "/rules/{rule_a}/run", None, 403),
            ("beta_operator", "POST", "/rules/{rule_a}/run", None, 404),
            ("operator", "POST", "/rules/{rule_a}/run", None, 202),
            ("root", "POST", "/rules/{rule_a}/run", None, 202),
            ("viewer", "POST", "/rules/{rule_a}/kill", None, 403),
            ("beta_operator", "POST", "/rules/{rule_a}/kill", None, 404),
            ("operator", "POST", "/rules/{rule_a}/kill", None, 202),
            ("viewer", "POST", "/rules", new_rule, 403),
            ("operator", "POST", "/rules", new_rule, 403),
            ("beta_admin", "POST", "/rules", new_rule, 422),  # alpha is not a group it knows
            ("admin", "POST", "/rules", new_rule, 201),
            ("operator", "DELETE", "/rules/{rule_a}", None, 403),
            ("beta_admin", "DELETE", "/rules/{rule_a}", None, 404),
            ("admin", "DELETE", "/rules/{rule_a}", None, 204),
            ("admin", "GET", "/rules/{rule_a}", None, 404),  # deleted
            ("admin", "POST", "/rules/{rule_a}/run", None, 404),
        ],
    )


async def test_runs_and_commands(api: httpx.AsyncClient, world: World):
    """Runs: members read them and their output; operators kill; commands are seen alike."""
    answer = await api.post(
        f"/api/v1/runs/{world.ids['run_a']}/kill", headers=world.auth("operator")
    )
    assert answer.status_code == 202
    world.ids["command"] = answer.json()["id"]
    await _check(
        api,
        world,
        [
            *[(u, "GET", "/runs/{run_a}", None, 200) for u in ("viewer", "operator", "admin")],
            ("beta_operator", "GET", "/runs/{run_a}", None, 404),
            ("nobody", "GET", "/runs/{run_a}", None, 404),
            ("viewer", "GET", "/runs/{run_a}/output", None, 200),
            ("beta_admin", "GET", "/runs/{run_a}/output", None, 404),
            ("viewer", "POST", "/runs/{run_a}/kill", None, 403),
            ("beta_operator", "POST", "/runs/{run_a}/kill", None, 404),
            ("root", "POST", "/runs/{run_a}/kill", None, 202),
            ("viewer", "GET", "/commands/{command}", None, 200),
            ("beta_operator", "GET", "/commands/{command}", None, 404),
            ("nobody", "GET", "/commands/{command}", None, 404),
            ("root", "GET", "/runs/999999", None, 404),
        ],
    )


async def test_grants(api: httpx.AsyncClient, world: World):
    """Roles in a group are granted by its admins (and superadmins), nobody else."""
    grant = {"username": "nobody", "gid": "{alpha}", "role": "viewer"}
    listed = await api.get(
        f"/api/v1/grants?user_id={world.user_ids['viewer']}", headers=world.auth("admin")
    )
    world.ids["viewer_grant"] = listed.json()[0]["id"]
    await _check(
        api,
        world,
        [
            ("viewer", "POST", "/grants", grant, 403),
            ("operator", "POST", "/grants", grant, 403),
            ("beta_admin", "POST", "/grants", grant, 404),
            ("admin", "POST", "/grants", grant | {"role": "owner"}, 422),
            ("admin", "POST", "/grants", grant | {"username": "nosuchuser"}, 422),
            ("admin", "POST", "/grants", grant, 201),
            ("viewer", "GET", "/grants/{viewer_grant}", None, 200),  # one's own
            ("operator", "GET", "/grants/{viewer_grant}", None, 404),
            ("beta_admin", "GET", "/grants/{viewer_grant}", None, 404),
            ("operator", "DELETE", "/grants/{viewer_grant}", None, 403),
            ("beta_admin", "DELETE", "/grants/{viewer_grant}", None, 404),
            ("admin", "DELETE", "/grants/{viewer_grant}", None, 204),
            ("viewer", "GET", "/rules/{rule_a}", None, 404),  # the role is gone, and the group
        ],
    )


async def test_users(api: httpx.AsyncClient, world: World):
    """Users are managed by superadmins; others see themselves (group admins see every name)."""
    new_user = {"name": "eve", "password": "long enough pw"}
    world.ids.update({f"user_{k}": v for k, v in world.user_ids.items()})
    await _check(
        api,
        world,
        [
            ("admin", "POST", "/users", new_user, 403),
            ("viewer", "POST", "/users", new_user, 403),
            ("root", "POST", "/users", new_user, 201),
            ("root", "POST", "/users", new_user, 409),
            ("root", "POST", "/users", {"name": "ev il", "password": "long enough pw"}, 422),
            ("root", "POST", "/users", {"name": "short", "password": "short"}, 422),
            ("viewer", "GET", "/users/{user_viewer}", None, 200),
            ("operator", "GET", "/users/{user_viewer}", None, 404),
            ("admin", "GET", "/users/{user_viewer}", None, 200),
            ("admin", "PATCH", "/users/{user_viewer}", {"superadmin": True}, 403),
            ("admin", "DELETE", "/users/{user_viewer}", None, 403),
            ("root", "PATCH", "/users/{user_root}", {"superadmin": False}, 409),  # the last one
            ("root", "DELETE", "/users/{user_root}", None, 409),
            ("root", "PATCH", "/users/{user_viewer}", {"status": 0}, 200),
            ("viewer", "GET", "/me", None, 401),  # disabled: the token stops working
            ("root", "DELETE", "/users/{user_nobody}", None, 204),
            ("root", "GET", "/users/{user_nobody}", None, 404),
        ],
    )


@pytest.mark.parametrize(
    ("user", "seen"),
    [
        ("root", ({"alpha job", "beta job"}, {"host-a", "host-b"}, {"alpha", "beta"})),
        ("viewer", ({"alpha job"}, {"host-a"}, {"alpha"})),
        ("operator", ({"alpha job"}, {"host-a"}, {"alpha"})),
        ("beta_operator", ({"beta job"}, {"host-b"}, {"beta"})),
        ("nobody", (set(), set(), set())),
    ],
)
async def test_lists_show_only_groups_with_a_role(
    api: httpx.AsyncClient, world: World, user: str, seen: tuple[set, set, set]
):
    """Lists of rules, agents, groups and runs hold only the groups where the user has a role."""
    rules, agents, groups = seen
    h = world.auth(user)

    async def names(path: str, key: str = "name") -> set:
        answer = await api.get("/api/v1" + path, headers=h)
        assert answer.status_code == 200, answer.text
        return {row[key] for row in answer.json()}

    assert await names("/rules") == rules
    assert await names("/agents") == agents
    assert await names("/groups") == groups
    assert await names("/runs", "rule_name") == rules
    # Filters name other groups' ids: still nothing of them.
    assert await names(f"/rules?gid={world.beta}") == rules & {"beta job"}
    assert await names(f"/runs?rule={world.ids['rule_b']}", "rule_name") == rules & {"beta job"}
    assert await names(f"/agents?gid={world.beta}") == agents & {"host-b"}


async def test_group_counts_are_of_visible_groups(api: httpx.AsyncClient, world: World):
    """The group list counts the rules and agents of each group; beta is not even listed."""
    answer = await api.get("/api/v1/groups", headers=world.auth("viewer"))
    [alpha] = answer.json()
    assert (alpha["name"], alpha["rules"], alpha["agents"], alpha["role"]) == (
        "alpha",
        1,
        1,
        "viewer",
    )


async def test_audit_is_scoped_to_administered_groups(api: httpx.AsyncClient, world: World):
    """Group admins read the audit entries of their groups; superadmins read all."""
    for user, rule in (("admin", "rule_a"), ("beta_admin", "rule_b")):
        answer = await api.post(f"/api/v1/rules/{world.ids[rule]}/run", headers=world.auth(user))
        assert answer.status_code == 202
    seen = await api.get("/api/v1/audit", headers=world.auth("admin"))
    assert {(e["action"], e["object_id"]) for e in seen.json()} == {
        ("rule.run", str(world.ids["rule_a"]))
    }
    everything = await api.get("/api/v1/audit", headers=world.auth("root"))
    assert len(everything.json()) == 2
    none = await api.get("/api/v1/audit", headers=world.auth("operator"))
    assert none.json() == []


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic cm9vdDpwdw==", "Bearer "])
async def test_without_a_good_token_everything_is_401(
    api: httpx.AsyncClient, world: World, header: str | None
):
    """No token, an unknown one or another scheme: 401 with WWW-Authenticate, and no data."""
    headers = {"Authorization": header} if header else {}
    for method, path in (
        ("GET", "/rules"),
        ("GET", f"/rules/{world.ids['rule_a']}"),
        ("POST", "/groups"),
    ):
        answer = await api.request(method, "/api/v1" + path, headers=headers, json={"name": "x"})
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"]["reason"]
