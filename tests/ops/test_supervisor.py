"""The shipped supervisor/ configs under a real supervisord: up, a rule runs, graceful stops."""

from __future__ import annotations

import asyncio
import configparser
import json
import shutil
import signal
import socket
import sys
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from center.store.db import create_engine
from center.tables import task_process
from protocol import statuses
from tests.integration.cluster import SECRET, add_rule, approve_agent, poll, runs_of
from tests.integration.test_processes import _env, _run

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]
SHIPPED = Path(__file__).parents[2] / "supervisor"
BIN = Path(sys.executable).parent
PROGRAMS = ("unitedcron-center", "unitedcron-agent", "unitedcron-admin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_toml(path: Path, values: dict[str, Any]) -> None:
    def quoted(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return repr(v) if isinstance(v, int | float) else '"' + str(v).replace('"', '\\"') + '"'

    path.write_text("".join(f"{k} = {quoted(v)}\n" for k, v in values.items()))


def settings(tmp: Path, db_url: str) -> dict[str, dict[str, Any]]:
    """The shipped TOML examples (so a wrong key there fails here), made local."""
    center_port = free_port()
    local = {
        "center": {
            "db_url": db_url,
            "secret": SECRET,
            "center_listen": f"127.0.0.1:{center_port}",
            "center_metrics_listen": "",
            "center_agents_poll_s": 0.2,
            "center_rules_poll_s": 0.2,
        },
        "agent": {
            "secret": SECRET,
            "agent_listen": "127.0.0.1:0",
            "agent_center": f"127.0.0.1:{center_port}",
            "agent_name": "sv-agent",
            "agent_state_dir": str(tmp / "agent-state"),
            "agent_metrics_listen": "",
            "agent_register_interval_s": 1.0,
        },
        "admin": {
            "db_url": db_url,
            "admin_listen": f"127.0.0.1:{free_port()}",
            "admin_cookie_secure": False,
            "admin_metrics_listen": "",
        },
    }
    out = {}
    for name, values in local.items():
        example = tomllib.loads((SHIPPED / f"{name}.toml.example").read_text())
        out[name] = example | values
        write_toml(tmp / f"{name}.toml", out[name])
    return out


def program_config(tmp: Path, name: str) -> str:
    """A shipped program config, with the paths of this machine and no user switch."""
    parser = configparser.RawConfigParser()
    parser.read_string((SHIPPED / f"{name}.conf").read_text())
    section = parser[f"program:unitedcron-{name}"]
    section["command"] = (
        section["command"]
        .replace("/opt/unitedcron/venv/bin/", f"{BIN}/")
        .replace("/etc/unitedcron/", f"{tmp}/")
    )
    section["directory"] = str(tmp)
    section["stdout_logfile"] = str(tmp / f"{name}.log")
    del section["user"]  # the test runs as one user
    lines = [f"[program:unitedcron-{name}]"] + [f"{k}={v}" for k, v in section.items()]
    return "\n".join(lines) + "\n"


def supervisord_config(tmp: Path) -> Path:
    include = tmp / "conf.d"
    include.mkdir()
    for name in ("center", "agent", "admin"):
        (include / f"{name}.conf").write_text(program_config(tmp, name))
    path = tmp / "supervisord.conf"
    path.write_text(
        f"[unix_http_server]\nfile={tmp}/sv.sock\n"
        f"[supervisord]\nlogfile={tmp}/supervisord.log\npidfile={tmp}/sv.pid\nnodaemon=true\n"
        f"childlogdir={tmp}\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
        f"[supervisorctl]\nserverurl=unix://{tmp}/sv.sock\n"
        f"[include]\nfiles = {include}/*.conf\n"
    )
    return path


@asynccontextmanager
async def supervisord(config: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "supervisord"),
        "-c",
        str(config),
        env=_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)  # supervisord stops its programs, then itself
            try:
                async with asyncio.timeout(60):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def ctl(config: Path, *args: str) -> str:
    _code, out, err = await _run(str(BIN / "supervisorctl"), "-c", str(config), *args, env=_env())
    return out + err


async def all_running(config: Path) -> bool:
    status = await ctl(config, "status")
    return all(f"{p}" in status for p in PROGRAMS) and status.count("RUNNING") == 3


async def test_supervisord_runs_the_shipped_configs_and_stops_them_gracefully(tmp_path: Path):
    """Under supervisord the center, agent and admin come up and run a rule; `supervisorctl
    stop` ends each with SIGTERM and exit status 0, never a KILL."""
    db_url = f"sqlite+aiosqlite:///{tmp_path}/uc.db"
    code, _, err = await _run(
        str(BIN / "unitedcron"), "db", "upgrade", "--db-url", db_url, env=_env()
    )
    assert code == 0, err
    values = settings(tmp_path, db_url)
    config = supervisord_config(tmp_path)
    engine = create_engine(db_url)
    try:
        async with supervisord(config):
            await poll(lambda: all_running(config), 40, every_s=0.5)
            aid = await approve_agent(engine, "sv-agent")
            task_id = await add_rule(engine, [aid], execute="/bin/echo under supervisord")
            runs = await poll(
                lambda: runs_of(engine, task_id, task_process.c.status == statuses.SUCCESS), 30
            )
            assert runs[0]["result"] == "under supervisord\n"
            async with httpx.AsyncClient(timeout=5) as client:
                page = await client.get(f"http://{values['admin']['admin_listen']}/login")
            assert page.status_code == 200
            for program in PROGRAMS:
                answer = await ctl(config, "stop", program)
                assert f"{program}: stopped" in answer, answer
            status = await ctl(config, "status")
            assert status.count("STOPPED") == 3, status
            await ctl(config, "shutdown")
    finally:
        await engine.dispose()
    log = (tmp_path / "supervisord.log").read_text()
    for program in PROGRAMS:
        assert f"stopped: {program} (exit status 0)" in log, log
    assert "SIGKILL" not in log
    # One JSON object per line; one `run.finished` line per run outcome, with its ids.
    lines = [json.loads(line) for line in (tmp_path / "center.log").read_text().splitlines()]
    assert all({"event", "level", "timestamp"} <= set(line) for line in lines)
    finished = [line for line in lines if line["event"] == "run.finished"]
    assert all({"runid", "task_id", "aid", "status", "code", "attempt"} <= set(f) for f in finished)
    # The rule fires every second: on a loaded machine a fire may be skipped (overlap) while
    # the first, slow to start, still runs; the run waited for above has its line.
    assert runs[0]["runid"] in {f["runid"] for f in finished if f["status"] == "success"}
    assert lines[-1]["event"] == "center.stopped"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
async def test_systemd_units_verify(tmp_path: Path):
    """The shipped systemd units pass `systemd-analyze verify` (paths made local)."""
    for unit in sorted((SHIPPED / "systemd").glob("*.service")):
        text = unit.read_text().replace("/opt/unitedcron/venv/bin/", f"{BIN}/")
        (tmp_path / unit.name).write_text(text)
        code, out, err = await _run(
            "systemd-analyze", "verify", str(tmp_path / unit.name), env=_env()
        )
        assert code == 0, out + err
        assert "Type=exec" in text and "KillSignal=SIGTERM" in text and "TimeoutStopSec=" in text
