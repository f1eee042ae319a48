"""The cluster secret never shows: not in logs, pages, API answers, run environments or errors."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from center.store.db import create_engine, upgrade_database
from center.tables import task_process
from protocol import statuses
from protocol.errors import AuthError
from protocol.stream import Connection, open_handshake
from tests.integration.cluster import add_group, add_rule, approve_agent, poll, runs_of

UNITEDCRON = Path(sys.executable).parent / "unitedcron"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def leaks(text: str, secret: str) -> list[str]:
    """The forms of the secret found in `text`: whole, either half, hex, base64."""
    raw = secret.encode()
    forms = {
        "secret": secret,
        "first half": secret[: len(secret) // 2],
        "second half": secret[len(secret) // 2 :],
        "hex": raw.hex(),
        "base64": base64.b64encode(raw).decode().rstrip("="),
    }
    return [name for name, form in forms.items() if form in text]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITEDCRON_")}
    return env | {f"UNITEDCRON_{k.upper()}": v for k, v in settings.items()}


@contextlib.asynccontextmanager
async def _process(command: str, log: Path, env: dict[str, str]) -> AsyncIterator[None]:
    """`unitedcron <command>` with its stdout and stderr in `log`; SIGTERM at the end."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(UNITEDCRON), command, stdout=out, stderr=out, env=env
        )
        try:
            yield
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _knock(port: int) -> None:
    """A peer with the wrong secret: each side logs the refusal."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Connection(reader, writer)
    with contextlib.suppress(AuthError):
        await open_handshake(conn, (b"a-wrong-secret-of-16+",), role="agent", name="knock")
    await conn.close()


async def _a_run_succeeded(engine: AsyncEngine, task_id: int) -> list:
    return await runs_of(engine, task_id, task_process.c.status == statuses.SUCCESS)


async def test_logs_of_a_real_center_and_agent(tmp_path: Path, sqlite_url: str):
    """A center and an agent as processes, at debug level, register, run a rule and refuse
    wrong-secret peers: their output never holds the secret in any form."""
    secret = secrets.token_urlsafe(24)
    await upgrade_database(sqlite_url)
    engine = create_engine(sqlite_url)
    center_port, agent_port = _free_port(), _free_port()
    common = {"secret": secret, "log_level": "debug", "log_format": "json"}
    center_env = _env(
        db_url=sqlite_url,
        center_listen=f"127.0.0.1:{center_port}",
        center_metrics_listen="127.0.0.1:0",
        center_agents_poll_s="0.2",
        center_rules_poll_s="0.2",
        **common,
    )
    agent_env = _env(
        agent_listen=f"127.0.0.1:{agent_port}",
        agent_center=f"127.0.0.1:{center_port}",
        agent_state_dir=str(tmp_path / "agent"),
        agent_name="leaky",
        agent_metrics_listen="127.0.0.1:0",
        agent_register_interval_s="1",
        **common,
    )
    try:
        async with (
            _process("center", tmp_path / "center.log", center_env),
            _process("agent", tmp_path / "agent.log", agent_env),
            asyncio.timeout(60),
        ):
            aid = await approve_agent(engine, "leaky", await add_group(engine))
            task_id = await add_rule(engine, [aid], execute="/bin/echo hello")
            await poll(lambda: _a_run_succeeded(engine, task_id), 20)
            await _knock(center_port)
            await _knock(agent_port)
            await asyncio.sleep(1)
    finally:
        await engine.dispose()
    for name in ("center.log", "agent.log"):
        text = (tmp_path / name).read_text(errors="replace")
        assert "refused" in text or "failed authentication" in text, name
        assert leaks(text, secret) == [], name


async def test_run_environments(
    db_url: str, engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A job that prints its environment, and one that reads its parent's, as nobody, on an
    agent whose own environment holds the secret: neither output holds it."""
    from tests.integration.cluster import SECRET, running_agent, running_center

    monkeypatch.setenv("UNITEDCRON_SECRET", SECRET)
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port),
        asyncio.timeout(60),
    ):
        aid = await approve_agent(engine, "agent-1")
        printer = await add_rule(engine, [aid], execute="/usr/bin/env")
        reader = await add_rule(engine, [aid], execute="cat /proc/$PPID/environ", shell=1)
        runs = await poll(lambda: _a_run_succeeded(engine, printer), 20)
        final = task_process.c.status.in_(statuses.FINAL)
        snooped = await poll(lambda: runs_of(engine, reader, final), 20)
    output = (runs[0]["result"] or "") + (snooped[0]["result"] or "")
    assert "PATH=" in output and "UNITEDCRON_SECRET" not in output
    assert leaks(output, SECRET) == []


async def _refused(command: str, env: dict[str, str], *args: str) -> str:
    """`unitedcron <command>` with a bad setting: it must stop with status 2; its output."""
    proc = await asyncio.create_subprocess_exec(
        str(UNITEDCRON), command, *args, env=env, stdout=-1, stderr=-2
    )
    async with asyncio.timeout(30):
        out, _ = await proc.communicate()
    assert proc.returncode == 2, out.decode(errors="replace")[-500:]
    return out.decode(errors="replace")


async def test_errors_of_bad_settings(tmp_path: Path):
    """A too-short second secret, a bad listen address next to the secret, a config file with
    the secret and an unknown key, an admin given the secret, the secret in a list: the error
    names the setting and never echoes the secret."""
    secret = secrets.token_urlsafe(24)
    config = tmp_path / "shared.toml"
    config.write_text(f'secret = "{secret}"\nno_such_setting = 1\n')
    listed = tmp_path / "listed.toml"
    listed.write_text(f'secret = ["{secret}", 5]\n')  # a list where text is expected
    outputs = [
        await _refused("center", _env(secret=f"{secret},short")),
        await _refused("agent", _env(secret=secret, agent_listen="nowhere")),
        await _refused("center", _env(), "--config", str(config)),
        await _refused("admin", _env(), "--config", str(config)),
        await _refused("agent", _env(), "--config", str(listed)),
    ]
    for output in outputs:
        assert "bad setting UNITEDCRON_" in output
        assert leaks(output, secret) == [], output


async def test_a_bad_database_url_is_not_echoed_with_its_password():
    """A database URL with a password but a wrong scheme: the error does not print the password."""
    password = secrets.token_urlsafe(12)
    url = f"mysql://cron:{password}@db.example:3306/united_cron"  # missing +aiomysql
    output = await _refused("center", _env(secret=secrets.token_urlsafe(24), db_url=url))
    assert "UNITEDCRON_DB_URL" in output and password not in output
