"""`unitedcron ctl` as a real process against a live fleet: admin on a port, center, agent."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.admin.seed import PASSWORD, add_group, add_user
from tests.admin.server import running_admin
from tests.integration.cluster import poll, running_agent, running_center

pytestmark = pytest.mark.timeout(180)
UNITEDCRON = str(Path(sys.executable).with_name("unitedcron"))
LINES = "for i in 1 2 3; do echo line $i; sleep 0.4; done"
LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")


def _env(home: Path, **values: str) -> dict[str, str]:
    """The test's environment, in English whatever the locale of the machine running it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UNITEDCRON_") and k not in LOCALE_VARIABLES
    }
    return env | {"HOME": str(home), "COLUMNS": "200", "LANG": "C.UTF-8"} | values


async def ctl(*args: str, env: dict[str, str], stdin: bytes = b"") -> tuple[int, str, str]:
    """Run `unitedcron ctl --poll 0.1 ARGS…`; its exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        UNITEDCRON,
        "ctl",
        "--poll",
        "0.1",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def ctl_json(*args: str, env: dict[str, str]) -> Any:
    code, out, err = await ctl(*args, "--json", env=env)
    assert code == 0, err
    return json.loads(out)  # one JSON document, nothing else on stdout


async def _pending_agent(env: dict[str, str], name: str) -> int | None:
    rows = await ctl_json("agents", "ls", "--pending", env=env)
    return next((a["id"] for a in rows if a["name"] == name), None)


async def _create_rule(base: str, token: str, gid: int, aid: int) -> int:
    body = {
        "gid": gid,
        "name": "echo-lines",
        "rule": "0 0 1 1 *",  # once a year: only run-now starts it in this test
        "execute": LINES,
        "shell": True,
        "run_user": "nobody",
        "agents": [aid],
    }
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        answer = await http.post(
            "/api/v1/rules", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


async def test_ctl_drives_a_live_fleet(db_url: str, app: FastAPI, tmp_path: Path):
    """Approve the agent, list rules, run one and follow its output live, see a failing run exit
    1, pause it, roll back an edit (history shows it), the fleet's status; --json parses."""
    engine = app.state.engine
    gid = await add_group(engine, "web")
    _, token = await add_user(engine, "root", superadmin=True)
    async with (
        running_center(db_url) as center,
        running_agent(
            tmp_path, center.registration_port, name="ctl-1", agent_register_interval_s=10
        ),
        running_admin(app) as base,
    ):
        env = _env(tmp_path, UNITEDCRON_URL=base, UNITEDCRON_TOKEN=token)
        aid = await poll(lambda: _pending_agent(env, "ctl-1"), 30, every_s=0.3)
        code, out, err = await ctl("agents", "approve", str(aid), "--group", str(gid), env=env)
        assert code == 0 and f"agent {aid} (ctl-1) approved in group {gid}" in out, err
        task_id = await _create_rule(base, token, gid, aid)

        code, out, err = await ctl("rules", "ls", env=env)
        assert code == 0, err
        header, line = out.splitlines()[:2]
        assert header.split() == ["ID", "NAME", "GROUP", "STATE", "SCHEDULE", "AGENTS", "COMMAND"]
        assert line.split()[:4] == [str(task_id), "echo-lines", "web", "enabled"]
        assert header.index("NAME") == line.index("echo-lines")  # aligned
        rules = await ctl_json("rules", "ls", env=env)
        assert [(r["id"], r["agents"]) for r in rules] == [(task_id, [aid])]

        # run now and follow: the lines arrive, then the run's end decides the exit code
        code, out, err = await ctl("rules", "run", str(task_id), "--follow", env=env)
        assert code == 0, err
        assert out == "line 1\nline 2\nline 3\n"
        assert "started 1 run(s)" in err and "ended success, exit code 0" in err
        assert "\r" not in err  # no progress line: stderr is not a terminal

        started = await ctl_json("rules", "run", str(task_id), env=env)
        assert started["command"]["status"] == "done"
        run_id = started["runs"][0]["id"]
        code, out, err = await ctl("runs", "tail", str(run_id), "-f", env=env)
        assert (code, out) == (0, "line 1\nline 2\nline 3\n"), err
        shown = await ctl_json("runs", "show", str(run_id), env=env)
        assert (shown["status"], shown["result"]) == ("success", "line 1\nline 2\nline 3\n")
        listed = await ctl_json("runs", "ls", "--rule", str(task_id), env=env)
        assert {r["id"] for r in listed} >= {run_id}

        # an edit that fails: the followed run exits 1; then roll the edit back
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            edit = {"execute": "echo bad; exit 3"}
            headers = {"Authorization": f"Bearer {token}"}
            assert (
                await http.patch(f"/api/v1/rules/{task_id}", json=edit, headers=headers)
            ).is_success
        code, out, err = await ctl("rules", "run", str(task_id), "-f", env=env)
        assert (code, out) == (1, "bad\n")
        assert "ended failed, exit code 3" in err

        code, out, err = await ctl("rules", "pause", str(task_id), env=env)
        assert code == 0 and out.strip() == f"rule {task_id} (echo-lines) paused", err
        code, out, err = await ctl("rules", "rollback", str(task_id), "1", env=env)
        assert code == 0 and out.strip() == f"rule {task_id} rolled back to v1: now v4", err
        history = await ctl_json("rules", "history", str(task_id), env=env)
        assert [(v["version"], v["summary"]) for v in history] == [
            (4, "rollback to v1"),
            (3, "paused"),
            (2, "changed execute"),
            (1, "created"),
        ]
        code, out, err = await ctl("rules", "history", str(task_id), env=env)
        assert code == 0 and "rollback to v1" in out and "root (api token" in out, err
        rule = await ctl_json("rules", "show", str(task_id), env=env)
        assert (rule["execute"], rule["status"]) == (LINES, 1)
        diff = await ctl_json("rules", "diff", str(task_id), "2", "4", env=env)
        assert [c["field"] for c in diff["changes"]] == ["execute"]
        code, out, err = await ctl("rules", "run", str(task_id), "-f", env=env)
        assert (code, out) == (0, "line 1\nline 2\nline 3\n"), err

        status = await ctl_json("status", env=env)
        assert status["leader"]["holder"] == "test-center" and status["leader"]["alive"]
        assert status["agents"]["up"] == 1 and status["rules"]["enabled"] == 1
        assert status["runs_last_hour"]["success"] == 3
        assert status["runs_last_hour"]["failed"] == 1
        code, out, err = await ctl("status", env=env)
        assert code == 0 and "test-center (epoch" in out and "3 success, 1 failed" in out, err
        agents = await ctl_json("agents", "ls", env=env)
        assert [(a["id"], a["status"]) for a in agents] == [(aid, 1)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_exit_codes(app: FastAPI, tmp_path: Path):
    """3 not found, 4 bad token, 5 nobody listening, 2 usage, 1 a field the server refused;
    each with one line on stderr that says why."""
    engine = app.state.engine
    gid = await add_group(engine, "web")
    _, token = await add_user(engine, "root", superadmin=True)
    del gid
    async with running_admin(app) as base:
        env = _env(tmp_path, UNITEDCRON_URL=base, UNITEDCRON_TOKEN=token)
        code, _, err = await ctl("rules", "show", "999999", env=env)
        assert (code, err) == (3, "error: no such rule\n")
        code, _, err = await ctl("--token", "uct_not-a-token", "rules", "ls", env=env)
        assert code == 4 and "unknown, revoked or expired" in err
        code, _, err = await ctl("rules", "ls", env=_env(tmp_path, UNITEDCRON_URL=base))
        assert code == 4 and "no token" in err
        code, _, err = await ctl("rules", "ls", "--state", "sleepy", env=env)
        assert code == 2 and "--state: must be enabled or paused" in err
        code, _, err = await ctl("rules", "show", env=env)
        assert code == 2  # a missing argument
        code, _, err = await ctl("rules", "ls", env=_env(tmp_path))
        assert code == 2 and "no admin URL" in err
        code, _, err = await ctl("rules", "rollback", "1", "1", env=env)
        assert code == 3
        code, _, err = await ctl("agents", "approve", "999", "--group", "1", env=env)
        assert code == 3
    code, _, err = await ctl(
        "--url", f"http://127.0.0.1:{_closed_port()}", "--token", token, "status", env=env
    )
    assert code == 5 and "no answer from" in err


async def test_run_sends_params_and_env_and_reports_a_refusal(tmp_path: Path):
    """`rules run --param … --env K=V` sends `params` and `env`; a 422 prints the server's field
    and reason and exits 1."""
    seen: list[Any] = []
    stub = FastAPI()

    @stub.post("/api/v1/rules/{task_id}/run")
    async def run_now(task_id: int, request: Request) -> JSONResponse:
        seen.append((task_id, await request.json(), request.headers["authorization"]))
        error = {"field": "params", "reason": "this rule does not take parameters"}
        return JSONResponse({"error": error}, status_code=422)

    async with running_admin(stub) as base:
        env = _env(tmp_path, UNITEDCRON_URL=base, UNITEDCRON_TOKEN="t0k")
        args = (
            "rules",
            "run",
            "7",
            "--param",
            "--day 2024-01-01",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
        )
        code, out, err = await ctl(*args, env=env)
        assert (code, out) == (1, "")
        assert err == "error: params: this rule does not take parameters\n"
        code, _, err = await ctl("rules", "run", "7", "--env", "novalue", env=env)
        assert code == 2 and "--env" in err
    assert seen == [
        (7, {"params": "--day 2024-01-01", "env": {"A": "1", "B": "x=y"}}, "Bearer t0k")
    ]


async def test_login_keeps_the_token_private(app: FastAPI, tmp_path: Path):
    """`login` gets a token for a password read from stdin and keeps it with mode 0600; later
    commands use it; a file others may read is refused; `logout` revokes the token."""
    engine = app.state.engine
    await add_user(engine, "root", superadmin=True)
    async with running_admin(app) as base:
        env = _env(tmp_path)
        code, out, err = await ctl(
            "--url",
            base,
            "login",
            "--user",
            "root",
            "--password-stdin",
            env=env,
            stdin=f"{PASSWORD}\n".encode(),
        )
        assert code == 0 and "logged in" in out, err
        saved = tmp_path / ".config" / "unitedcron" / "ctl.json"
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        values = json.loads(saved.read_text())
        assert values["url"] == base and values["token"].startswith("uc")
        assert await ctl_json("rules", "ls", env=env) == []
        saved.chmod(0o644)
        code, _, err = await ctl("rules", "ls", env=env)
        assert code == 2 and "readable by others" in err
        saved.chmod(0o600)
        code, out, err = await ctl("logout", env=env)
        assert code == 0, err
        assert not saved.exists()
        code, _, err = await ctl("--token", values["token"], "--url", base, "rules", "ls", env=env)
        assert code == 4
        code, _, err = await ctl(
            "--url",
            base,
            "login",
            "--user",
            "root",
            "--password-stdin",
            env=env,
            stdin=b"wrong\n",
        )
        assert code == 4 and "wrong username or password" in err


async def test_ctl_speaks_chinese_and_its_json_does_not(db_url: str, app: FastAPI, tmp_path: Path):
    """With LANG=zh_CN.UTF-8 (or --lang zh-CN) the tables, states, messages and the run's end
    are Chinese, aligned by display width; --json prints the same document as in English."""
    engine = app.state.engine
    gid = await add_group(engine, "web")
    _, token = await add_user(engine, "root", superadmin=True)
    async with (
        running_center(db_url) as center,
        running_agent(
            tmp_path, center.registration_port, name="ctl-zh", agent_register_interval_s=10
        ),
        running_admin(app) as base,
    ):
        env = _env(tmp_path, UNITEDCRON_URL=base, UNITEDCRON_TOKEN=token)
        zh = env | {"LANG": "zh_CN.UTF-8"}
        aid = await poll(lambda: _pending_agent(env, "ctl-zh"), 30, every_s=0.3)
        code, out, err = await ctl("agents", "approve", str(aid), "--group", str(gid), env=zh)
        assert code == 0 and out.strip() == f"节点 {aid}（ctl-zh）已批准加入分组 {gid}", err
        task_id = await _create_rule(base, token, gid, aid)

        code, out, err = await ctl("rules", "ls", env=zh)
        assert code == 0, err
        header, line = out.splitlines()[:2]
        assert header.split() == ["ID", "名称", "分组", "状态", "调度", "节点", "命令"]
        assert line.split()[:4] == [str(task_id), "echo-lines", "web", "已启用"]
        # aligned on screen: "名称" is two characters wide each, like "echo-lines" is ten
        assert _screen_column(header, "名称") == _screen_column(line, "echo-lines")
        for args in (("rules", "ls"), ("rules", "show", str(task_id))):
            english, chinese = await ctl_json(*args, env=env), await ctl_json(*args, env=zh)
            assert chinese == english, args
        # an agent's heartbeat moves its figures between two calls: its keys and words do not
        english, chinese = (
            await ctl_json("agents", "ls", env=env),
            await ctl_json("agents", "ls", env=zh),
        )
        assert [sorted(a) for a in chinese] == [sorted(a) for a in english]
        assert [(a["name"], a["status"], a["group_name"]) for a in chinese] == [
            ("ctl-zh", 1, "web")
        ]

        code, out, err = await ctl("--lang", "zh-CN", "rules", "run", str(task_id), "-f", env=env)
        assert (code, out) == (0, "line 1\nline 2\nline 3\n"), err
        assert "命令" in err and "已结束：成功，退出码 0" in err
        code, out, err = await ctl("rules", "pause", str(task_id), env=zh)
        assert code == 0 and out.strip() == f"规则 {task_id}（echo-lines）已暂停", err
        code, out, err = await ctl("status", env=zh | {"UNITEDCRON_LANGUAGE": "zh-CN"})
        assert code == 0 and "主中心" in out and "1 在线" in out and "1 成功" in out, err
        code, _, err = await ctl("rules", "ls", "--state", "sleepy", env=zh)
        assert (code, err) == (2, "错误：--state：必须是 enabled 或 paused\n")
        code, out, err = await ctl("--lang", "en", "rules", "ls", env=zh)  # --lang wins
        assert code == 0 and out.split()[:2] == ["ID", "NAME"], err


def _screen_column(line: str, text: str) -> int:
    """Where `text` starts on a terminal (a Chinese character takes two columns)."""
    before = line[: line.index(text)]
    return sum(2 if "\u4e00" <= ch <= "\u9fff" else 1 for ch in before)


async def test_ctl_asks_the_server_for_its_language(tmp_path: Path):
    """Accept-Language carries the chosen language; the server's reason is printed as it came,
    after a Chinese `错误：`; with --json the stub's answer is passed on as it is."""
    seen: list[str] = []
    stub = FastAPI()

    @stub.get("/api/v1/rules/{task_id}")
    async def show(task_id: int, request: Request) -> JSONResponse:
        seen.append(request.headers.get("accept-language", ""))
        if task_id == 1:
            return JSONResponse({"id": 1, "name": "r", "status": 1})
        error = {"reason": "不存在该规则", "reason_en": "no such rule"}
        return JSONResponse({"error": error}, status_code=404)

    async with running_admin(stub) as base:
        env = _env(tmp_path, UNITEDCRON_URL=base, UNITEDCRON_TOKEN="t0k")
        code, _, err = await ctl("--lang", "zh-CN", "rules", "show", "2", env=env)
        assert (code, err) == (3, "错误：不存在该规则\n")
        assert await ctl_json("rules", "show", "1", env=env | {"LC_ALL": "zh_CN.UTF-8"}) == {
            "id": 1,
            "name": "r",
            "status": 1,
        }
        code, _, _ = await ctl("rules", "show", "2", env=env)
    assert seen == ["zh-CN", "zh-CN", "en"]
