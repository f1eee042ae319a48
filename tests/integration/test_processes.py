"""The commands as an operator runs them: real `unitedcron`/`python -m` processes, real signals."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from center.store.db import create_engine
from center.tables import task_process
from protocol import statuses
from tests.integration.cluster import SECRET, add_rule, approve_agent, poll, runs_of

pytestmark = pytest.mark.timeout(120)
UNITEDCRON = str(Path(sys.executable).with_name("unitedcron"))


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITEDCRON_")}
    return env | {"UNITEDCRON_LOG_FORMAT": "json"} | values


async def _run(*args: str, env: dict[str, str], timeout_s: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(timeout_s):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("module", "variable", "value"),
    [
        ("center", "UNITEDCRON_CENTER_LISTEN", "not-an-address"),
        ("center", "UNITEDCRON_CENTER_TICK_MS", "0"),
        ("center", "UNITEDCRON_DB_URL", "postgres://x"),
        ("agent", "UNITEDCRON_AGENT_LISTEN", "abc"),
        ("agent", "UNITEDCRON_AGENT_CENTER", "host-without-port"),
    ],
)
async def test_bad_setting_stops_with_one_line_naming_it(module: str, variable: str, value: str):
    """A bad setting exits with status 2 and one stderr line naming the variable."""
    env = _env(UNITEDCRON_SECRET=SECRET, **{variable: value})
    code, _, err = await _run(sys.executable, "-m", module, env=env)
    assert code == 2
    assert err.count("\n") == 1 and variable in err, err


async def test_missing_secret_is_named(tmp_path: Path):
    """Without UNITEDCRON_SECRET the center refuses to start and says which setting is missing."""
    code, _, err = await _run(UNITEDCRON, "center", env=_env())
    assert code == 2 and "UNITEDCRON_SECRET" in err and err.count("\n") == 1


async def test_db_upgrade_creates_and_is_idempotent(empty_db_url: str):
    """`unitedcron db upgrade` creates the schema, and running it again changes nothing."""
    for _ in range(2):
        code, out, err = await _run(
            UNITEDCRON, "db", "upgrade", "--db-url", empty_db_url, env=_env()
        )
        assert code == 0, err
        assert "is at revision" in out and "@" not in out.split("is at")[0].split("//")[-1][:1]


async def test_center_refuses_an_unmigrated_database(tmp_path: Path):
    """A center pointed at a database without the schema exits 2 and says to run db upgrade."""
    url = f"sqlite+aiosqlite:///{tmp_path}/empty.db"
    code, out, err = await _run(
        UNITEDCRON, "center", "--db-url", url, env=_env(UNITEDCRON_SECRET=SECRET)
    )
    assert code == 2 and "unitedcron db upgrade" in out + err


async def test_real_processes_run_a_rule_and_stop_on_sigterm(tmp_path: Path):
    """`unitedcron center` and `python -m agent` run a rule, then drain and exit 0 on SIGTERM."""
    url = f"sqlite+aiosqlite:///{tmp_path}/uc.db"
    code, _, err = await _run(UNITEDCRON, "db", "upgrade", "--db-url", url, env=_env())
    assert code == 0, err
    with socket_port() as port:
        pass
    env = _env(
        UNITEDCRON_SECRET=SECRET,
        UNITEDCRON_DB_URL=url,
        UNITEDCRON_CENTER_LISTEN=f"127.0.0.1:{port}",
        UNITEDCRON_AGENT_LISTEN="127.0.0.1:0",
        UNITEDCRON_AGENT_CENTER=f"127.0.0.1:{port}",
        UNITEDCRON_AGENT_NAME="proc-agent",
        UNITEDCRON_AGENT_STATE_DIR=str(tmp_path / "agent"),
        UNITEDCRON_AGENT_REGISTER_INTERVAL_S="1",
    )
    center = await asyncio.create_subprocess_exec(UNITEDCRON, "center", env=env)
    agent = await asyncio.create_subprocess_exec(sys.executable, "-m", "agent", env=env)
    engine: AsyncEngine = create_engine(url)
    try:
        aid = await approve_agent(engine, "proc-agent")
        task_id = await add_rule(engine, [aid], execute="/bin/echo from a real process")
        rows = await poll(
            lambda: runs_of(engine, task_id, task_process.c.status == statuses.SUCCESS), 20
        )
        assert rows[0]["result"] == "from a real process\n"
        for proc in (agent, center):
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                assert await proc.wait() == 0
    finally:
        for proc in (agent, center):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await engine.dispose()


async def test_demo_runs_sample_rules_and_stops_on_ctrl_c(tmp_path: Path):
    """`unitedcron demo` brings everything up, prints finished runs, and stops cleanly on SIGINT."""
    demo = await asyncio.create_subprocess_exec(
        UNITEDCRON,
        "demo",
        "--dir",
        str(tmp_path / "demo"),
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(40):
            while not any("success" in line for line in lines):
                line = (await demo.stdout.readline()).decode()
                assert line, "demo exited early:\n" + "".join(lines)
                lines.append(line)
        demo.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            rest = (await demo.stdout.read()).decode()
            assert await demo.wait() == 0, rest
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
    banner = "".join(lines)
    assert "UnitedCron demo is running" in banner and "database:" in banner


class socket_port:
    """A free TCP port on 127.0.0.1 (closed again before use; the race is acceptable in tests)."""

    def __enter__(self) -> int:
        import socket

        self._s = socket.socket()
        self._s.bind(("127.0.0.1", 0))
        return int(self._s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._s.close()
